"""Headless command line: photos or a folder → .blend / .glb / .fbx with the face objects.

Two ways in, same arguments::

    blender -b --command msma reconstruct PHOTO|FOLDER ... -o OUT [options]
    python -m msma_blender reconstruct PHOTO|FOLDER ... -o OUT [options]     # bpy module

``OUT`` ending in ``.blend``, ``.glb`` or ``.fbx`` is one file holding every face (or the
animation with ``--animation``); any other ``OUT`` is a folder receiving one
``<photo stem>.<format>`` per photo. Existing files are never overwritten without ``--force``.

Exit status, as the engine's CLI (``python -m msma_engine reconstruct``): 0 when every input
worked; 1 when any input failed — one line ``error: <file>: <reason>`` on standard error
each, the other inputs are still written — or an output exists without ``--force``
(nothing is written); 2 for unusable arguments, model or weights (nothing was processed).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FORMATS", "build_parser", "main", "missing_dependencies_message", "plan_outputs"]

log = logging.getLogger(__name__)

FORMATS = ("blend", "glb", "fbx")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CommandError(Exception):
    """One ``error: <file>: <reason>`` line; nothing more is done; exits with ``code``."""

    def __init__(self, path: str | Path, reason, code: int = EXIT_USAGE):
        super().__init__(f"{path}: {reason}")
        self.code = code


def build_parser(prog: str = "msma") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="MSMA face reconstruction inside Blender, headless.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("reconstruct", help="photos or a folder → .blend/.glb/.fbx",
                       description="Reconstruct the face(s) of photos into Blender objects and save them.")
    p.add_argument("inputs", nargs="+", type=Path, metavar="PHOTO|FOLDER",
                   help="image files and/or folders of images (sorted naturally)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                   help="a .blend/.glb/.fbx file for everything, or a folder for one file per photo")
    p.add_argument("--format", choices=FORMATS, help="file format when OUT is a folder (default: blend)")
    p.add_argument("--fit", choices=("default", "fast", "none"), default="default",
                   help="test-time fitting quality ('none': network only)")
    p.add_argument("--texture-size", type=int, default=1024, metavar="PX", help="albedo texture side (64-4096)")
    p.add_argument("--face", default="largest", metavar="WHICH",
                   help="'largest', 'only', 'all' or a face number (left to right from 0)")
    p.add_argument("--device", default="cpu", help="'cpu' or 'cuda'")
    p.add_argument("--model", type=Path, help="face-model .npz (default: the shipped default head)")
    p.add_argument("--weights", type=Path, help="network weights (default: shipped weights, if any)")
    p.add_argument("--camera", action="store_true", help="add a camera matching each photo")
    p.add_argument("--texture", choices=("pack", "save"), default="pack",
                   help="pack the albedo PNG into the .blend, or save it beside the output")
    p.add_argument("--lighting", type=float, default=1.0,
                   help="initial photo-lighting mix of the material (0 = plain albedo)")
    p.add_argument("--animation", action="store_true",
                   help="the inputs are frames of one sequence: one animated face (keyframed expressions, pose)")
    p.add_argument("--smoothing", type=float, default=1.0, metavar="SIGMA",
                   help="animation: Gaussian smoothing over frames, sigma in frames (0 = off)")
    p.add_argument("--identity", choices=("first", "mean"), default="first",
                   help="animation: keep the first frame's face shape or the mean over frames")
    p.add_argument("--preview", type=Path, metavar="PNG",
                   help="also render the result through the photo camera to this PNG (one output only)")
    p.add_argument("--preview-over-photo", action="store_true",
                   help="composite the preview over the (first) photo to check the alignment")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return parser


@dataclass
class OutputPlan:
    """One file to write and the images that go into it."""

    path: Path
    images: list[Path] = field(default_factory=list)


def plan_outputs(images: list[Path], output: Path, fmt: str | None, animation: bool,
                 label: str = "animation") -> tuple[str, list[OutputPlan]]:
    """Decide the files to write.

    Args:
        images: the input images, in order.
        output: ``-o`` value.
        fmt: ``--format`` or None.
        animation: everything goes into one animated object.
        label: file stem for an animation written into a folder.

    Returns:
        ``(format, plans)``.

    Raises:
        CommandError: ``--format`` contradicts the output's extension, or two photos share a stem.
    """
    suffix = output.suffix.lower().lstrip(".")
    if suffix in FORMATS:
        if fmt is not None and fmt != suffix:
            raise CommandError(output, f"--format {fmt} does not match the file extension .{suffix}")
        return suffix, [OutputPlan(output, list(images))]
    fmt = fmt or "blend"
    if animation:
        return fmt, [OutputPlan(output / f"{label}.{fmt}", list(images))]
    plans: dict[str, OutputPlan] = {}
    for img in images:
        target = output / f"{img.stem}.{fmt}"
        if target.name in plans:
            raise CommandError(img, f"two inputs would both be written to {target}; use separate runs")
        plans[target.name] = OutputPlan(target, [img])
    return fmt, list(plans.values())


def _error(path, reason) -> None:
    from .pipeline import error_line

    print(f"error: {error_line(path, reason)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status (also when argparse rejects the arguments)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # `blender --command` wants a return code, not an exception
        return int(exc.code or 0)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return _reconstruct(args)
    except CommandError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.code


def missing_dependencies_message(err: ImportError, package: str | None = __package__) -> str:
    """One line naming the missing packages and the commands that install them.

    Args:
        err: the ImportError the engine raised.
        package: the extension's module name (``bl_ext.<repo>.msma_face``), for its
            private ``site-packages`` folder; outside an installed extension only the
            preferences button and the docs are named.
    """
    from . import deps

    missing = ", ".join(deps.missing_modules()) or str(err)
    hint = "use 'Install Dependencies' in the MSMA Face add-on preferences"
    try:
        target = deps.site_packages_dir(package, create=False)
        hint += " or run: " + " && ".join(" ".join(cmd) for cmd in deps.install_commands(target))
    except (ValueError, FileNotFoundError):  # not an installed extension (bpy module from a checkout)
        hint += " (see docs/BLENDER.md)"
    return f"missing Python dependencies: {missing} ({err}); {hint}"


def _face_choice(value: str):
    if value in ("largest", "only", "all"):
        return value
    try:
        return int(value)
    except ValueError:
        raise CommandError("--face", f"expected largest, only, all or a number, got {value!r}") from None


def _reconstruct(args) -> int:
    from .pipeline import EngineSettings, InputError, collect_images

    face = _face_choice(args.face)
    if not 64 <= args.texture_size <= 4096:
        raise CommandError("--texture-size", f"must be 64-4096, got {args.texture_size}")
    images, failures = [], 0
    for item in args.inputs:  # a bad input is reported; the others still run
        try:
            images.extend(p for p in collect_images([item]) if p not in images)
        except InputError as err:
            _error(err.path, err.reason)
            failures += 1
    if not images:
        return EXIT_FAILED
    label = args.inputs[0].stem if len(args.inputs) == 1 else "animation"
    fmt, plans = plan_outputs(images, args.output, args.format, args.animation, label=label)
    if args.preview is not None and len(plans) != 1:
        raise CommandError(args.preview, f"--preview needs a single output file, this run writes {len(plans)}")
    for target in [p.path for p in plans] + ([args.preview] if args.preview else []):
        if target.exists() and not args.force:
            raise CommandError(target, "already exists (use --force to overwrite)", code=EXIT_FAILED)
    for model_file in (args.model, args.weights):
        if model_file is not None and not model_file.is_file():
            raise CommandError(model_file, "no such file")

    from msma_engine.errors import MSMAError

    from .pipeline import get_session

    settings = EngineSettings(model_path=str(args.model or ""), weights_path=str(args.weights or ""),
                              device=args.device)
    try:
        session = get_session(settings)
    except ImportError as err:
        raise CommandError("engine", missing_dependencies_message(err)) from None
    except MSMAError as err:
        raise CommandError(args.model or args.weights or "model", err) from None

    for plan in plans:
        t0 = time.perf_counter()
        results = []
        for img in plan.images:
            try:
                results.extend(session.reconstruct(img, fit=None if args.fit == "none" else args.fit,
                                                   texture_size=args.texture_size,
                                                   face="largest" if args.animation else face))
            except MSMAError as err:
                _error(img, err)
                failures += 1
        if not results:
            continue
        _write(plan.path, fmt, results, session.exp_basis, args)
        print(f"wrote {plan.path} ({len(results)} face(s), {time.perf_counter() - t0:.1f} s)")
    return EXIT_OK if failures == 0 else EXIT_FAILED


_ID_COLLECTIONS = ("objects", "meshes", "materials", "images", "cameras", "actions", "worlds", "scenes",
                   "node_groups", "shape_keys")


def _write(path: Path, fmt: str, results: list, exp_basis, args) -> None:
    """Build the results in a new scene, save it in ``fmt``, then remove everything created."""
    import bpy

    from .animation import build_animated_face
    from .face_builder import BuildOptions, build_face_object
    from .material import use_plain_albedo
    from .render_preview import render_preview

    before = {name: set(getattr(bpy.data, name)) for name in _ID_COLLECTIONS}
    window = bpy.context.window
    window_scene = window.scene if window is not None else None
    path.parent.mkdir(parents=True, exist_ok=True)
    scene = bpy.data.scenes.new(path.stem)
    options = BuildOptions(texture_mode=args.texture.upper(), texture_dir=str(path.parent),
                           add_camera=args.camera or args.preview is not None, set_scene_camera=True,
                           lighting=args.lighting, name=path.stem if args.animation else None)
    try:
        if args.animation:
            objs = [build_animated_face(results, exp_basis, scene.collection, options, scene=scene,
                                        frame_start=1, sigma=args.smoothing, identity=args.identity.upper())]
        else:
            objs = []
            for res in results:
                objs.append(build_face_object(res, exp_basis, scene.collection, options, scene=scene))
                options.set_scene_camera = False
        if path.exists():
            path.unlink()  # --force was checked before any work
        if fmt == "blend":
            bpy.data.libraries.write(str(path), {scene}, path_remap="RELATIVE_ALL", compress=True)
        else:
            for obj in objs:
                for slot in obj.material_slots:
                    use_plain_albedo(slot.material)  # exporters read an image wired to Base Color
            with bpy.context.temp_override(scene=scene, view_layer=scene.view_layers[0]):
                if fmt == "glb":
                    bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLB", use_active_scene=True,
                                              export_morph=True, export_animations=args.animation,
                                              export_cameras=True)
                else:
                    bpy.ops.export_scene.fbx(filepath=str(path), object_types={"MESH", "CAMERA"},
                                             path_mode="COPY", embed_textures=True, bake_anim=args.animation,
                                             use_mesh_modifiers=False)
        if args.preview is not None:
            camera = bpy.data.objects[objs[0]["msma_camera"]]
            if args.preview.exists():
                args.preview.unlink()
            photo = results[0].image_path if args.preview_over_photo else None
            render_preview(scene, camera, args.preview, photo=photo)
            print(f"wrote {args.preview}")
    finally:
        # The glTF exporter leaves the window on the scene it exported; removing that scene
        # under the window crashes Blender 4.3 at the next context access.
        if window is not None and window.scene != window_scene:
            window.scene = window_scene
        created = [idb for name in _ID_COLLECTIONS for idb in getattr(bpy.data, name) if idb not in before[name]]
        bpy.data.batch_remove(created)
