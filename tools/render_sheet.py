"""Render sheet of reconstructed heads: front, ¾, profile, jawOpen + smile, blink + look left,
and close-ups of the open mouth and of the eyes looking left.

Every photo is reconstructed with the engine, built with the Blender extension's own
builder (quads, Subdivision Surface, mouth interior, eyes with their look keys) and
rendered headless with Cycles on the CPU, in the model frame (head pose removed), plain
albedo (photo lighting off) under a neutral studio light. One PNG row per photo plus a
sheet of all rows is written.

Usage::

    python -m tools.render_sheet [PHOTO ...] [-o /tmp/msma_render_sheet] [--size 320] [--samples 16]

``astronaut`` names scikit-image's astronaut; without photos: the astronaut and every
``*.jpg`` in the shared public-domain photo folder (benchmarks/sample_photos.py).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]

__all__ = ["VIEWS", "View", "main"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class View:
    """One column of the sheet.

    Attributes:
        label: caption.
        azimuth_deg: camera turned about the vertical axis towards the subject's right (0 = front).
        keys: shape-key values set for this view; None keeps the fitted expression.
        distance: camera distance, metres.
        target_z: height (Blender z, model frame) the camera looks at, metres.
        target_front: how far in front of the head's centre that point is, metres.
    """

    label: str
    azimuth_deg: float
    keys: dict[str, float] | None = field(default=None)
    distance: float = 0.62
    target_z: float = 0.0
    target_front: float = 0.0


VIEWS = (
    View("front", 0.0),
    View("3/4", 45.0),
    View("profile", 90.0),
    View("jawOpen + smile", 20.0, {"jawOpen": 1.0, "mouthSmileLeft": 0.6, "mouthSmileRight": 0.6}),
    View("blink R + look left", 0.0, {"eyeBlinkRight": 1.0, "eyeLookOutLeft": 1.0, "eyeLookInRight": 1.0}),
    View("mouth close-up, jawOpen", 15.0, {"jawOpen": 1.0}, distance=0.22, target_z=-0.04, target_front=0.08),
    View("eyes close-up, look left", 0.0, {"eyeLookOutLeft": 1.0, "eyeLookInRight": 1.0}, distance=0.3,
         target_z=0.035, target_front=0.06),
)


def _photos(args: list[str]) -> list[tuple[str, object]]:
    """``(name, image)`` pairs: a path, or the astronaut array."""
    if not args:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from sample_photos import SHARED_PHOTOS

        args = ["astronaut"] + sorted(str(p) for p in SHARED_PHOTOS.glob("*.jpg"))
    out = []
    for a in args:
        if a == "astronaut":
            import skimage.data

            out.append(("astronaut", skimage.data.astronaut()))
        else:
            out.append((Path(a).stem, a))
    return out


def _studio(bpy, scene, size: int, samples: int):
    """Cycles CPU, grey world, key + fill area lights, an 85 mm camera aimed at the head."""
    from mathutils import Vector

    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = False
    scene.render.image_settings.file_format = "PNG"
    # Blender's default AgX view transform washes skin out; "Standard" shows the albedo's own colours.
    scene.view_settings.view_transform = "Standard"
    world = bpy.data.worlds.new("Sheet World")
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.35, 0.36, 0.38, 1.0)
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.5
    scene.world = world
    for name, loc, energy in (("Key", (-0.5, -0.8, 0.5), 25.0), ("Fill", (0.7, -0.6, 0.1), 10.0),
                              ("Rim", (0.0, 0.8, 0.6), 15.0)):
        light = bpy.data.lights.new(name, "AREA")
        light.energy, light.size = energy, 0.6
        obj = bpy.data.objects.new(name, light)
        obj.location = loc
        obj.rotation_euler = (-Vector(loc)).to_track_quat("-Z", "Y").to_euler()
        scene.collection.objects.link(obj)
    cam = bpy.data.objects.new("Sheet Camera", bpy.data.cameras.new("Sheet Camera"))
    cam.data.lens = 85.0
    scene.collection.objects.link(cam)
    scene.camera = cam
    return cam


def _aim(cam, azimuth_deg: float, target_z: float, distance: float, target_front: float = 0.0) -> None:
    """Camera on a circle round the head (Blender: face looks along -y), looking at ``target``."""
    from mathutils import Vector

    target = (0.0, -target_front, target_z)
    a = math.radians(azimuth_deg)
    # Azimuth > 0 moves the camera towards the subject's right (-x).
    pos = Vector(target) + distance * Vector((-math.sin(a), -math.cos(a), 0.05))
    cam.location = pos
    cam.rotation_euler = (Vector(target) - pos).to_track_quat("-Z", "Y").to_euler()


def _label(img, text: str):
    from PIL import ImageDraw

    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, img.width, 18], fill=(0, 0, 0))
    draw.text((4, 3), text, fill=(255, 255, 255))
    return img


def render_rows(photos, out_dir: Path, size: int, samples: int, fit: str | None) -> list[Path]:
    """Reconstruct, build and render every photo; returns the row PNGs."""
    import bpy
    from PIL import Image

    from msma_blender.face_builder import BuildOptions, build_face_object
    from msma_engine.pipeline import Reconstructor

    rec = Reconstructor()
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, image in photos:
        t0 = time.perf_counter()
        res = rec.reconstruct(image, fit=fit, texture_size=1024)
        t1 = time.perf_counter()
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = bpy.context.scene
        cam = _studio(bpy, scene, size, samples)
        obj = build_face_object(res, scene.collection, BuildOptions(lighting=0.0, name=name))
        t2 = time.perf_counter()
        obj.matrix_world.identity()  # model frame: the sheet shows the head, not the photo pose
        keys = obj.data.shape_keys.key_blocks
        fitted = {k.name: k.value for k in keys}
        tiles = []
        for view in VIEWS:
            for k in keys[1:]:
                k.value = fitted[k.name] if view.keys is None else view.keys.get(k.name, 0.0)
            _aim(cam, view.azimuth_deg, view.target_z, view.distance, view.target_front)
            slug = "".join(c if c.isalnum() else "_" for c in view.label)
            path = out_dir / f"{name}_{slug}.png"
            scene.render.filepath = str(path)
            bpy.ops.render.render(write_still=True)
            tiles.append(_label(Image.open(path).convert("RGB"), f"{name}: {view.label}"))
        row = Image.new("RGB", (size * len(tiles), size))
        for i, tile in enumerate(tiles):
            row.paste(tile, (i * size, 0))
        row_path = out_dir / f"{name}_row.png"
        row.save(row_path)
        rows.append(row_path)
        log.info("%s: reconstruct %.1f s, Blender build %.2f s, %d renders %.1f s", name, t1 - t0, t2 - t1,
                 len(VIEWS), time.perf_counter() - t2)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", nargs="*", help="photo paths, or 'astronaut'")
    parser.add_argument("-o", "--out", type=Path, default=Path(tempfile.gettempdir()) / "msma_render_sheet")
    parser.add_argument("--size", type=int, default=320, help="tile side in pixels")
    parser.add_argument("--samples", type=int, default=16, help="Cycles samples")
    parser.add_argument("--fit", default="default", choices=["none", "fast", "default"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from PIL import Image

    rows = render_rows(_photos(args.photos), args.out, args.size, args.samples,
                       None if args.fit == "none" else args.fit)
    images = [Image.open(r) for r in rows]
    sheet = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images)))
    y = 0
    for im in images:
        sheet.paste(im, (0, y))
        y += im.height
    sheet.save(args.out / "sheet.png")
    print(f"wrote {args.out / 'sheet.png'} ({len(rows)} photos x {len(VIEWS)} views)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
