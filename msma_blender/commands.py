"""Headless command line: photos or a folder → .blend / .glb / .fbx with the face objects.

Two ways in, same arguments::

    blender -b --command msma reconstruct PHOTO|FOLDER ... -o OUT [options]
    python -m msma_blender reconstruct PHOTO|FOLDER ... -o OUT [options]     # bpy module

The arguments, folder expansion (natural order), output names, error lines and exit codes
are the engine CLI's (:mod:`msma_engine.cli_common`); this command adds only its extras
(format, camera, texture packing, lighting, animation, preview).

``OUT`` ending in ``.blend``, ``.glb`` or ``.fbx`` is one file holding every face (or the
animation with ``--animation``); any other ``OUT`` is a folder receiving one
``<photo stem>.<format>`` per photo. Existing files are never overwritten without ``--force``;
every file is written under a temporary name and renamed when complete, so a failed or
interrupted export leaves the previous file as it was.

Exit status (:class:`msma_engine.cli_common.ExitCode`): 0 when every input worked; 1 when
any input failed — one line ``error: <file>: <reason>`` on standard error each, the other
inputs are still written — or an output exists without ``--force`` (nothing is written);
2 for unusable arguments, output location, model or weights (nothing was processed);
130 when interrupted with Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

from msma_engine.cli_common import (ExitCode, add_reconstruct_arguments, collect_inputs, prepare_output_dir,
                                    print_error, resolve_fit, set_thread_policy, unique_stems)
from msma_engine.errors import UsageError
from msma_engine.fileio import atomic_output
from msma_engine.timing import Stopwatch

__all__ = ["FORMATS", "build_parser", "main", "missing_dependencies_message", "plan_outputs"]

log = logging.getLogger(__name__)

FORMATS = ("blend", "glb", "fbx")


class CommandError(Exception):
    """One ``error: <file>: <reason>`` line; nothing more is done; exits with ``code``."""

    def __init__(self, path: str | Path, reason, code: int = ExitCode.USAGE):
        super().__init__(f"{path}: {reason}")
        self.code = code


def build_parser(prog: str = "msma") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="MSMA face reconstruction inside Blender, headless.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("reconstruct", help="photos or a folder → .blend/.glb/.fbx",
                       description="Reconstruct the face(s) of photos into Blender objects and save them.")
    add_reconstruct_arguments(p, output_help="a .blend/.glb/.fbx file for everything, or a folder for one file "
                                             "per photo")
    p.add_argument("--format", choices=FORMATS, help="file format when OUT is a folder (default: blend)")
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
        CommandError: ``--format`` contradicts the output's extension, or two photos in different
            folders share a file name (photos sharing a stem get their suffix added: ``a_jpg``).
    """
    suffix = output.suffix.lower().lstrip(".")
    if suffix in FORMATS:
        if fmt is not None and fmt != suffix:
            raise CommandError(output, f"--format {fmt} does not match the file extension .{suffix}")
        return suffix, [OutputPlan(output, list(images))]
    fmt = fmt or "blend"
    if animation:
        return fmt, [OutputPlan(output / f"{label}.{fmt}", list(images))]
    try:
        stems = unique_stems(images)
    except UsageError as err:
        raise CommandError(output, err) from None
    return fmt, [OutputPlan(output / f"{stems[img]}.{fmt}", [img]) for img in images]


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status (also when argparse rejects the arguments)."""
    set_thread_policy()  # before the engine imports torch
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
        print_error(None, err)
        return err.code
    except KeyboardInterrupt:
        print_error(None, "interrupted; files written so far are complete")
        return ExitCode.INTERRUPTED


def missing_dependencies_message(err: ImportError, package: str | None = __package__) -> str:
    """One line naming the missing packages and the (shell-quoted) commands that install them.

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
        hint += " or run: " + deps.command_line([step.cmd for step in deps.install_steps(target)])
    except (ValueError, FileNotFoundError):  # not an installed extension (bpy module from a checkout)
        hint += " (see docs/BLENDER.md)"
    return f"missing Python dependencies: {missing} ({err}); {hint}"


def _check_targets(plans: list[OutputPlan], args) -> None:
    """Every output location usable and nothing to overwrite without --force, before any work."""
    targets = [p.path for p in plans] + ([args.preview] if args.preview else [])
    for target in targets:
        if target.is_dir():
            raise CommandError(target, "is a folder; give a file name or a folder without the extension")
        try:
            prepare_output_dir(target.parent)
        except UsageError as err:
            raise CommandError(target, err) from None
    for target in targets:
        if target.exists() and not args.force:
            raise CommandError(target, "already exists (use --force to overwrite)", code=ExitCode.FAILED)


def _reconstruct(args) -> int:
    images, problems = collect_inputs(args.inputs)
    for item, reason in problems:  # a bad input is reported; the others still run
        print_error(item, reason)
    failures = len(problems)
    if not images:
        return ExitCode.FAILED
    label = args.inputs[0].stem if len(args.inputs) == 1 else "animation"
    fmt, plans = plan_outputs(images, args.output, args.format, args.animation, label=label)
    if args.preview is not None and len(plans) != 1:
        raise CommandError(args.preview, f"--preview needs a single output file, this run writes {len(plans)}")
    for model_file in (args.model, args.weights):
        if model_file is not None and not model_file.is_file():
            raise CommandError(model_file, "no such file")
    _check_targets(plans, args)
    fit = resolve_fit(args.fit)

    from msma_engine.errors import MSMAError

    from .pipeline import EngineSettings, get_session

    settings = EngineSettings(model_path=str(args.model or ""), weights_path=str(args.weights or ""),
                              device=args.device)
    try:
        session = get_session(settings)
    except ImportError as err:
        raise CommandError("engine", missing_dependencies_message(err)) from None
    except MSMAError as err:
        raise CommandError(args.model or args.weights or "model", err) from None
    except Exception as err:  # noqa: BLE001 - one line, not a traceback (-v logs it)
        log.debug("engine set-up failed", exc_info=True)
        raise CommandError(args.model or args.weights or "engine", f"unexpected {type(err).__name__}: {err}") from None

    for plan in plans:
        clock = Stopwatch()
        results = []
        for img in plan.images:
            try:
                results.extend(session.reconstruct(img, fit=fit, texture_size=args.texture_size,
                                                   face="largest" if args.animation else args.face))
            except MSMAError as err:
                print_error(img, err)
                failures += 1
            except Exception as err:  # noqa: BLE001 - the other photos still run
                log.debug("reconstruction of %s failed", img, exc_info=True)
                print_error(img, f"unexpected {type(err).__name__}: {err}")
                failures += 1
        if not results:
            continue
        try:
            _write(plan.path, fmt, results, args)
        except Exception as err:  # noqa: BLE001 - e.g. an exporter error; the other outputs still run
            log.debug("writing %s failed", plan.path, exc_info=True)
            print_error(plan.path, err)
            failures += 1
            continue
        print(f"wrote {plan.path} ({len(results)} face(s), {clock.elapsed:.1f} s)")
    return ExitCode.OK if failures == 0 else ExitCode.FAILED


@contextlib.contextmanager
def _interrupts_kept():
    """Re-raise a Ctrl-C that an operator swallowed (Blender turns exceptions in operators into CANCELLED)."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield
        return
    hit = []

    def handler(signum, frame):
        hit.append(signum)
        previous(signum, frame)

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if hit:
        raise KeyboardInterrupt


def _run_operator(operator, label: str, **kwargs) -> None:
    """Call a ``bpy.ops`` exporter; a Ctrl-C inside it interrupts, a result other than FINISHED raises.

    Raises:
        KeyboardInterrupt: Ctrl-C was pressed while the operator ran.
        RuntimeError: the operator did not finish.
    """
    with _interrupts_kept():
        result = operator(**kwargs)
    if "FINISHED" not in result:
        raise RuntimeError(f"the {label} exporter returned {', '.join(sorted(result))}")


_ID_COLLECTIONS = ("objects", "meshes", "materials", "images", "cameras", "actions", "worlds", "scenes",
                   "node_groups", "shape_keys")


def _write(path: Path, fmt: str, results: list, args) -> None:
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
            objs = [build_animated_face(results, scene.collection, options, scene=scene,
                                        frame_start=1, sigma=args.smoothing, identity=args.identity.upper())]
        else:
            objs = []
            for res in results:
                objs.append(build_face_object(res, scene.collection, options, scene=scene))
                options.set_scene_camera = False
        # Written under a temporary name and renamed: a failed export keeps the old file.
        with atomic_output(path, overwrite=args.force) as tmp:
            if fmt == "blend":
                # bpy 5.2 crashes writing a scene made by scenes.new() that was never evaluated;
                # evaluating one frame sets up its runtime data (4.2-5.1 do not need it).
                scene.frame_set(scene.frame_start)
                with _interrupts_kept():
                    bpy.data.libraries.write(str(tmp), {scene}, path_remap="RELATIVE_ALL", compress=True)
            else:
                for obj in objs:
                    for slot in obj.material_slots:
                        use_plain_albedo(slot.material)  # exporters read an image wired to Base Color
                with bpy.context.temp_override(scene=scene, view_layer=scene.view_layers[0]):
                    if fmt == "glb":
                        _run_operator(bpy.ops.export_scene.gltf, "glTF", filepath=str(tmp), export_format="GLB",
                                      use_active_scene=True, export_morph=True,
                                      export_animations=args.animation, export_cameras=True)
                    else:
                        _run_operator(bpy.ops.export_scene.fbx, "FBX", filepath=str(tmp),
                                      object_types={"MESH", "CAMERA"}, path_mode="COPY", embed_textures=True,
                                      bake_anim=args.animation, use_mesh_modifiers=False, use_subsurf=True)
        if args.preview is not None:
            camera = bpy.data.objects[objs[0]["msma_camera"]]
            photo = results[0].image_path if args.preview_over_photo else None
            with atomic_output(args.preview, overwrite=True) as tmp:  # --force was checked before any work
                render_preview(scene, camera, tmp, photo=photo)
            print(f"wrote {args.preview}")
    finally:
        # The glTF exporter leaves the window on the scene it exported; removing that scene
        # under the window crashes Blender 4.3 at the next context access.
        if window is not None and window.scene != window_scene:
            window.scene = window_scene
        created = [idb for name in _ID_COLLECTIONS for idb in getattr(bpy.data, name) if idb not in before[name]]
        bpy.data.batch_remove(created)
