"""The engine's command line: ``python -m msma_engine <command>``.

Commands::

    python -m msma_engine reconstruct PHOTO|FOLDER [...] -o OUT [--model NPZ] [--weights PT]
        [--fit fast|default|none] [--texture-size N] [--face largest|all|N] [--force]
    python -m msma_engine convert-bfm ...      (see msma_engine.cli_convert)

``reconstruct`` writes, per face, into OUT:

- ``<stem>[_faceN].glb``: mesh, UVs, albedo texture, one morph target per expression;
- ``<stem>[_faceN]_albedo.png``: the baked albedo texture;
- ``<stem>[_faceN]_coeffs.json``: coefficients by name, pose, SH light, camera, model name,
  timings and quality metrics;
- ``<stem>[_faceN]_overlay.png``: the fitted face and landmarks over the photo.

``_faceN`` is added with ``--face all`` or a face number. Existing files are never
overwritten without ``--force``. A bad input prints one line ``error: <file>: <reason>``
on standard error and the remaining files are still processed.

Exit status: 0 when every input worked; 1 when any input failed; 2 for unusable
arguments, model or weights (nothing was processed).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from msma_engine.errors import MSMAError

__all__ = ["main", "build_parser", "add_reconstruct_parser", "run_reconstruct", "coefficients_json", "output_paths",
           "IMAGE_SUFFIXES"]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")
"""File types picked up from a folder (files named explicitly are tried whatever their suffix)."""

_OUTPUT_KINDS = {"glb": ".glb", "albedo": "_albedo.png", "coeffs": "_coeffs.json", "overlay": "_overlay.png"}


def _face_choice(text: str):
    if text in ("largest", "all", "only"):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--face must be 'largest', 'all', 'only' or a face number, got {text!r}")


def _texture_size(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--texture-size must be an integer, got {text!r}")
    if not 64 <= n <= 4096:
        raise argparse.ArgumentTypeError(f"--texture-size must be within 64-4096, got {n}")
    return n


def add_reconstruct_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``reconstruct`` sub-command to ``subparsers``."""
    p = subparsers.add_parser("reconstruct", help="reconstruct textured, animatable 3D faces from photos",
                              description="Reconstruct a 3D face from each photo (or each image in a folder).")
    p.add_argument("inputs", nargs="+", type=Path, metavar="PHOTO|FOLDER", help="image files or folders")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="output folder (created)")
    p.add_argument("--model", type=Path, metavar="NPZ", help="face-model file (default: the shipped head)")
    p.add_argument("--weights", type=Path, metavar="PT", help="network weights (default: none, fit the mean face)")
    p.add_argument("--fit", choices=("fast", "default", "none"), default="default",
                   help="test-time fitting quality (default: %(default)s)")
    p.add_argument("--texture-size", type=_texture_size, default=1024, metavar="N",
                   help="albedo texture side in texels, 64-4096 (default: %(default)s)")
    p.add_argument("--face", type=_face_choice, default="largest", metavar="largest|all|N",
                   help="which face: the largest, all, or a number counted left to right from 0")
    p.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.set_defaults(func=run_reconstruct)
    return p


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m msma_engine`` argument parser with all sub-commands."""
    parser = argparse.ArgumentParser(prog="python -m msma_engine", description="MSMA single-photo 3D face engine.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_reconstruct_parser(sub)
    from msma_engine.cli_convert import add_convert_bfm_parser

    add_convert_bfm_parser(sub)
    return parser


def _collect(inputs: list[Path]) -> tuple[list[Path], list[str]]:
    """Image files from files and folders (folders: sorted, image suffixes only) and errors."""
    files, errors = [], []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                errors.append(f"{item}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
            files.extend(found)
        else:
            files.append(item)  # missing or odd files get their error from the image loader
    return files, errors


def _stems(files: list[Path]) -> dict[Path, str]:
    """Output stem per input; inputs sharing a stem (a.jpg, a.png) get their suffix added."""
    counts: dict[str, int] = {}
    for f in files:
        counts[f.stem] = counts.get(f.stem, 0) + 1
    return {f: f.stem if counts[f.stem] == 1 else f"{f.stem}_{f.suffix.lstrip('.').lower()}" for f in files}


def output_paths(out_dir: Path, stem: str, face_index: int | None) -> dict[str, Path]:
    """The four output files of one face (``face_index`` None = no ``_faceN`` suffix)."""
    base = stem if face_index is None else f"{stem}_face{face_index}"
    return {kind: out_dir / f"{base}{suffix}" for kind, suffix in _OUTPUT_KINDS.items()}


def _existing(paths: dict[str, Path]) -> Path | None:
    return next((p for p in paths.values() if p.exists()), None)


def coefficients_json(result, layout, model_name: str) -> dict:
    """The ``_coeffs.json`` content of one :class:`~msma_engine.result.FaceResult`."""
    parts = {name: np.asarray(result.coeffs[s], dtype=float) for name, s in layout.slices().items()}
    cam = result.camera
    return {
        "model": model_name,
        "image": result.image_path,
        "face_index": result.face_index,
        "layout": dict(zip(layout.names, layout.sizes)),
        "coefficients": {
            "id": parts["id"].tolist(),
            "exp": {name: float(v) for name, v in zip(result.expression_names, parts["exp"])},
            "tex": parts["tex"].tolist(),
            "angles": parts["angles"].tolist(),
            "gamma": parts["gamma"].tolist(),
            "trans": parts["trans"].tolist(),
        },
        "pose": {
            "angles_rad": np.asarray(result.angles).tolist(),
            "angles_order": "pitch, yaw, roll; R = Rz(roll) Ry(yaw) Rx(pitch)",
            "rotation": np.asarray(result.rotation).tolist(),
            "translation_m": np.asarray(result.translation).tolist(),
        },
        "sh": {"coefficients": np.asarray(result.sh_coeffs).tolist(),
               "order": "R(9) G(9) B(9); +0.8 on each DC term in shading"},
        "camera": {"focal_px": cam.focal, "center_px": list(cam.center), "image_size_hw": list(cam.image_size),
                   "distance_m": cam.distance},
        "face_box": np.asarray(result.face_box).tolist(),
        "landmarks_2d": np.asarray(result.landmarks_2d).tolist(),
        "detected_landmarks": np.asarray(result.detected_landmarks).tolist(),
        "timings_s": {k: round(float(v), 4) for k, v in result.timings.items()},
        "metrics": {k: float(v) for k, v in result.metrics.items()},
    }


def _write_face(result, paths: dict[str, Path], rec, photo: np.ndarray) -> None:
    from PIL import Image

    from msma_engine.export_gltf import write_glb
    from msma_engine.overlay import render_overlay

    model = rec.model
    write_glb(result, model.exp_basis.detach().cpu().numpy(), paths["glb"])
    Image.fromarray(result.albedo_texture).save(paths["albedo"])
    paths["coeffs"].write_text(json.dumps(coefficients_json(result, model.layout, model.name), indent=1))
    Image.fromarray(render_overlay(photo, result, ctx=rec.ctx)).save(paths["overlay"])


def run_reconstruct(args: argparse.Namespace) -> int:
    """Run ``reconstruct`` for parsed ``args``; returns the exit status."""
    from tqdm import tqdm

    from msma_engine.image_io import load_image
    from msma_engine.pipeline import Reconstructor

    files, errors = _collect(args.inputs)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    if not files:
        return 1
    out_dir: Path = args.output
    if out_dir.exists() and not out_dir.is_dir():
        print(f"error: {out_dir}: output exists and is not a folder", file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        rec = Reconstructor(args.model, args.weights, device=args.device)
    except MSMAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    fit = None if args.fit == "none" else args.fit
    suffixed = args.face == "all" or isinstance(args.face, int)
    stems = _stems(files)
    failed = len(errors)
    bar = tqdm(files, desc="reconstruct", unit="photo", disable=len(files) < 2, file=sys.stderr)
    for path in bar:
        try:
            if not suffixed:
                # Known names: refuse before spending seconds on the reconstruction.
                clash = None if args.force else _existing(output_paths(out_dir, stems[path], None))
                if clash is not None:
                    raise FileExistsError(f"output {clash} exists (use --force to overwrite)")
            start = time.perf_counter()
            loaded = load_image(path)
            results = rec.reconstruct(loaded, fit=fit, texture_size=args.texture_size, face=args.face)
            results = results if isinstance(results, list) else [results]
            for res in results:
                paths = output_paths(out_dir, stems[path], res.face_index if suffixed else None)
                clash = None if args.force else _existing(paths)
                if clash is not None:
                    raise FileExistsError(f"output {clash} exists (use --force to overwrite)")
                _write_face(res, paths, rec, loaded.pixels)
            msg = (f"{path}: {len(results)} face(s), landmark error "
                   + ", ".join(f"{r.metrics.get('landmark_nme_fit', float('nan')):.3f}" for r in results)
                   + f" IOD, {time.perf_counter() - start:.1f} s")
            tqdm.write(msg)
        except (MSMAError, FileExistsError) as exc:
            failed += 1
            # Engine messages often name the file already; say it once, in front.
            text = str(exc).replace(f"{path}: ", "").replace(f" in {path}", "").replace(f" {path}", "")
            tqdm.write(f"error: {path}: {text}", file=sys.stderr)
        except Exception as exc:  # keep going through a folder; -v shows the trace
            failed += 1
            logger.debug("unexpected failure on %s", path, exc_info=True)
            tqdm.write(f"error: {path}: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m msma_engine``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args))
