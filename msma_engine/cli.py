"""The engine's command line: ``python -m msma_engine <command>``.

Commands::

    python -m msma_engine reconstruct PHOTO|FOLDER [...] -o OUT [--model NPZ] [--weights PT]
        [--fit fast|default|none] [--texture-size N] [--face largest|only|all|N] [--force]
    python -m msma_engine convert-bfm ...      (see msma_engine.cli_convert)

``reconstruct`` writes, per face, into OUT:

- ``<stem>[_faceN].glb``: mesh, UVs, albedo texture, one morph target per expression;
- ``<stem>[_faceN]_albedo.png``: the baked albedo texture;
- ``<stem>[_faceN]_coeffs.json``: coefficients by name, pose, SH light, camera, model name,
  timings and quality metrics;
- ``<stem>[_faceN]_overlay.png``: the fitted face and landmarks over the photo.

``_faceN`` is added with ``--face all`` (N: the face's number, left to right from 0) or
``--face N`` (the N asked for). Photos sharing a stem (``a.jpg``, ``a.png``) get their suffix
added (``a_jpg``); the same file name in two input folders is refused before any work.

Outputs are never half-written or mixed: the four files of a face are all encoded before
any is written, each is written under a temporary name and renamed, and a photo's outputs
are written under a lock on ``OUT/.<stem>.lock``, so two runs into one folder take turns.
Existing files are never overwritten without ``--force``: a face whose four files all exist
is skipped (not an error); one with some missing (an interrupted run) gets the missing
ones. A bad input prints one line ``error: <file>: <reason>`` on standard error and the
remaining files are still processed.

Exit status (:class:`~msma_engine.cli_common.ExitCode`): 0 when every input worked or was
complete already; 1 when any input failed; 2 for unusable arguments, output folder, model
or weights (nothing was processed); 130 when interrupted (committed files are complete).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
from pathlib import Path

import numpy as np

from msma_engine.cli_common import (ExitCode, add_reconstruct_arguments, collect_inputs, prepare_output_dir,
                                    print_error, resolve_fit, set_thread_policy, unique_stems)
from msma_engine.errors import MSMAError
from msma_engine.fileio import atomic_write, exclusive_lock
from msma_engine.timing import Stopwatch

__all__ = ["main", "build_parser", "add_reconstruct_parser", "run_reconstruct", "coefficients_json", "output_paths"]

logger = logging.getLogger(__name__)

_OUTPUT_KINDS = {"glb": ".glb", "albedo": "_albedo.png", "coeffs": "_coeffs.json", "overlay": "_overlay.png"}


def add_reconstruct_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``reconstruct`` sub-command to ``subparsers``."""
    p = subparsers.add_parser("reconstruct", help="reconstruct textured, animatable 3D faces from photos",
                              description="Reconstruct a 3D face from each photo (or each image in a folder).")
    add_reconstruct_arguments(p, output_help="output folder (created)")
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


def output_paths(out_dir: Path, stem: str, face_index: int | None) -> dict[str, Path]:
    """The four output files of one face (``face_index`` None = no ``_faceN`` suffix)."""
    base = stem if face_index is None else f"{stem}_face{face_index}"
    return {kind: out_dir / f"{base}{suffix}" for kind, suffix in _OUTPUT_KINDS.items()}


def _complete(paths: dict[str, Path]) -> bool:
    return all(p.exists() for p in paths.values())


def coefficients_json(result) -> dict:
    """The ``_coeffs.json`` content of one :class:`~msma_engine.result.FaceResult`."""
    layout = result.topology.layout
    parts = {name: np.asarray(result.part(name), dtype=float) for name in layout.names}
    cam = result.camera
    return {
        "model": result.topology.name,
        "image": result.image_path,
        "face_index": result.face_index,
        "layout": dict(zip(layout.names, layout.sizes)),
        "coefficients": {
            "id": parts["id"].tolist(),
            "exp": {name: float(v) for name, v in zip(result.topology.expression_names, parts["exp"])},
            "tex": parts["tex"].tolist(),
            "angles": parts["angles"].tolist(),
            "gamma": parts["gamma"].tolist(),
            "trans": parts["trans"].tolist(),
        },
        "pose": {
            "angles_rad": parts["angles"].tolist(),
            "angles_order": "pitch, yaw, roll; R = Rz(roll) Ry(yaw) Rx(pitch)",
            "rotation": np.asarray(result.rotation).tolist(),
            "translation_m": parts["trans"].tolist(),
        },
        "sh": {"coefficients": parts["gamma"].tolist(),
               "order": "R(9) G(9) B(9); +0.8 on each DC term in shading"},
        "camera": {"focal_px": cam.focal, "center_px": list(cam.center), "image_size_hw": list(cam.image_size),
                   "distance_m": cam.distance},
        "face_box": np.asarray(result.face_box).tolist(),
        "landmarks_2d": np.asarray(result.landmarks_2d).tolist(),
        "detected_landmarks": np.asarray(result.detected_landmarks).tolist(),
        "timings_s": {k: round(v, 4) for k, v in result.timings.as_dict().items()},
        "metrics": result.metrics.as_dict() if result.metrics is not None else {},
    }


def _png(pixels) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _encode_outputs(result, rec, photo, name: str) -> dict[str, bytes]:
    """All four outputs of one face, in memory (nothing is written before all are ready)."""
    from msma_engine.export_gltf import glb_bytes
    from msma_engine.overlay import render_overlay

    return {
        "glb": glb_bytes(result, name),
        "albedo": _png(result.albedo_texture),
        "coeffs": json.dumps(coefficients_json(result), indent=1).encode(),
        "overlay": _png(render_overlay(photo, result, ctx=rec.ctx)),
    }


def _commit_outputs(paths: dict[str, Path], blobs: dict[str, bytes], force: bool) -> list[Path]:
    """Write each output atomically; without ``force`` existing files are kept. Returns those written."""
    written = []
    for kind, path in paths.items():
        if not force and path.exists():
            continue  # left complete by an interrupted run of the same photo
        atomic_write(path, blobs[kind], overwrite=force)
        written.append(path)
    return written


def _reconstruct_photo(path: Path, stem: str, out_dir: Path, rec, args, fit) -> str:
    """Reconstruct one photo and write its faces' outputs; returns the status line."""
    from msma_engine.image_io import load_image

    clock = Stopwatch()
    face = args.face
    # The photo's outputs are decided and written under one lock: a second run into the
    # same folder waits, then finds them complete instead of mixing its files in.
    with exclusive_lock(out_dir / f".{stem}.lock"):
        if face != "all" and not args.force:
            known = output_paths(out_dir, stem, face if isinstance(face, int) else None)
            if _complete(known):
                return f"{path}: outputs exist in {out_dir}, skipped (use --force to redo)"
        loaded = load_image(path)
        if face == "all":
            results = rec.reconstruct_all(loaded, fit=fit, texture_size=args.texture_size)
        else:
            results = [rec.reconstruct(loaded, fit=fit, texture_size=args.texture_size, face=face)]
        notes = []
        for res in results:
            index = args.face if isinstance(face, int) else res.face_index if face == "all" else None
            paths = output_paths(out_dir, stem, index)
            if not args.force and _complete(paths):
                notes.append(f"{paths['glb'].name} exists, skipped")
                continue
            name = paths["glb"].stem
            _commit_outputs(paths, _encode_outputs(res, rec, loaded.pixels, name), args.force)
        errors = ", ".join(f"{r.metrics.landmark_nme_fit:.3f}" if r.metrics else "n/a" for r in results)
        extra = f" ({'; '.join(notes)})" if notes else ""
        return f"{path}: {len(results)} face(s), landmark error {errors} IOD, {clock.elapsed:.1f} s{extra}"


def run_reconstruct(args: argparse.Namespace) -> int:
    """Run ``reconstruct`` for parsed ``args``; returns the exit status."""
    from tqdm import tqdm

    from msma_engine.pipeline import Reconstructor

    files, problems = collect_inputs(args.inputs)
    for item, reason in problems:
        print_error(item, reason)
    if not files:
        return ExitCode.FAILED
    try:
        stems = unique_stems(files)
        fit = resolve_fit(args.fit)
        out_dir = prepare_output_dir(args.output)
        rec = Reconstructor(args.model, args.weights, device=args.device)
    except MSMAError as exc:
        print_error(None, exc)
        return ExitCode.USAGE
    failed = len(problems)
    bar = tqdm(files, desc="reconstruct", unit="photo", disable=len(files) < 2, file=sys.stderr)
    try:
        for path in bar:
            try:
                tqdm.write(_reconstruct_photo(path, stems[path], out_dir, rec, args, fit))
            except (MSMAError, OSError) as exc:
                failed += 1
                print_error(path, exc, write=tqdm.write)
            except Exception as exc:  # keep going through a folder; -v shows the trace
                failed += 1
                logger.debug("unexpected failure on %s", path, exc_info=True)
                print_error(path, f"unexpected {type(exc).__name__}: {exc}", write=tqdm.write)
    except KeyboardInterrupt:
        bar.close()
        print_error(None, "interrupted; files written so far are complete, a re-run completes the rest")
        return ExitCode.INTERRUPTED
    return ExitCode.FAILED if failed else ExitCode.OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m msma_engine``."""
    set_thread_policy()
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args))
