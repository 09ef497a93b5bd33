"""Benchmark of turning a reconstruction into an artist's head; prints a Markdown table.

Rows: building the Blender object (mesh with quads, shape keys, 1024² albedo image, material,
eyes with driven look keys, mouth interior, Subdivision Surface modifier) per face, with the
parts switched off one by one; and the file sizes of the engine's .glb writer and of the
headless command's .glb / .fbx exports of the same face.

Usage::

    python benchmarks/bench_head_build.py [--repeat 5] [PHOTO]

Defaults to scikit-image's astronaut, reconstructed once without fitting (the build does
not depend on the fit).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from machine import cpu_model  # noqa: E402


def _build_times(bpy, res, repeat: int, **options) -> list[float]:
    from msma_blender.face_builder import BuildOptions, build_face_object

    out = []
    for _ in range(repeat):
        bpy.ops.wm.read_factory_settings(use_empty=True)
        start = time.perf_counter()
        build_face_object(res, bpy.context.scene.collection, BuildOptions(**options))
        bpy.context.view_layer.update()  # evaluate shape keys, drivers and the modifier once
        out.append(time.perf_counter() - start)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photo", nargs="?", default=None)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    import bpy
    import skimage.data

    from msma_blender.commands import _write
    from msma_engine.export_gltf import write_glb
    from msma_engine.pipeline import Reconstructor

    rec = Reconstructor()
    res = rec.reconstruct(args.photo or skimage.data.astronaut(), fit=None, texture_size=1024)
    rows = []
    for label, opts in (("full (quads, eyes + look keys, mouth, subdivision)", {}),
                        ("no subdivision", {"subdivision": 0}),
                        ("no mouth", {"add_mouth": False}),
                        ("no eyes", {"add_eyes": False}),
                        ("mesh + keys + texture only", {"subdivision": 0, "add_mouth": False, "add_eyes": False})):
        t = _build_times(bpy, res, args.repeat, **opts)
        rows.append((label, f"{statistics.median(t):.3f} s (best {min(t):.3f})"))
    sizes = []
    with tempfile.TemporaryDirectory() as tmp:
        engine_glb = write_glb(res, Path(tmp) / "engine.glb")
        sizes.append(("engine .glb (msma_engine.export_gltf)", engine_glb.stat().st_size))
        cmd_args = SimpleNamespace(texture="pack", camera=False, preview=None, lighting=1.0, animation=False,
                                   smoothing=1.0, identity="first", preview_over_photo=False, force=True)
        for fmt in ("glb", "fbx"):
            path = Path(tmp) / f"blender.{fmt}"
            bpy.ops.wm.read_factory_settings(use_empty=True)
            _write(path, fmt, [res], cmd_args)
            sizes.append((f"headless command .{fmt}", path.stat().st_size))
    print(f"Machine: {cpu_model()} ({platform.machine()}), Blender {bpy.app.version_string}; "
          f"face: {len(res.vertices_neutral)} head vertices, mouth "
          f"{0 if res.mouth is None else len(res.mouth.vertices_neutral)}, texture {res.albedo_texture.shape[0]}²\n")
    print(f"| Blender object build (median of {args.repeat}) | time |\n|---|---|")
    for label, value in rows:
        print(f"| {label} | {value} |")
    print("\n| file (1024² texture) | size |\n|---|---|")
    for label, size in sizes:
        print(f"| {label} | {size / 1e6:.2f} MB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
