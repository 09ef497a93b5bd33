"""Render sheet of baked albedo textures in Blender: front, ¾, profile, blink, mouth closed.

Per photo (scikit-image's astronaut and ../shared/data/photos/*.jpg) the main job runs
(default fit); when the engine's ``bake`` takes dense landmarks, the texture is re-baked with
the MediaPipe Face Mesh points. The head is built with the Blender extension's own builder
(:func:`msma_blender.face_builder.build_face_object`, plain albedo: Lighting 0, white world),
posed frontally, and rendered with Cycles: the fitted expression from the front, at 45° and
at 90°; then neutral with both eyes blinked, and neutral (mouth closed) from the front.

Usage::

    python benchmarks/texture_sheet.py OUT.png [--size 320]

Run with ``PYTHONPATH`` at an older checkout for a "before" sheet.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
import sys
import tempfile
from pathlib import Path

import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sample_photos import SHARED_PHOTOS  # noqa: E402

VIEWS = ("front", "3/4", "profile", "blink", "mouth closed")


def _results():
    from skimage import data

    from msma_engine.align import CropTransform
    from msma_engine.detect import detect_faces, pick_face
    from msma_engine.detect.mediapipe_mesh import MediaPipeLandmarker
    from msma_engine.image_io import load_image, load_image_array
    from msma_engine.pipeline import Reconstructor

    rec = Reconstructor()
    mp = MediaPipeLandmarker()
    dense_ok = "dense_landmarks" in inspect.signature(rec.baker.bake).parameters
    photos = [("astronaut", load_image_array(data.astronaut()))]
    photos += [(p.stem.split("_")[0], load_image(p)) for p in sorted(SHARED_PHOTOS.glob("*.jpg"))]
    for name, loaded in photos:
        res = rec.reconstruct(loaded, fit="default")
        if dense_ok:
            det = pick_face(detect_faces(loaded.pixels, rec.detector), "largest", image_name=name)[0]
            dense = mp.mesh(loaded.pixels, det)[:, :2]
            crop = CropTransform(matrix=res.crop_matrix, size=rec.model.camera.image_size[0])
            baked = rec.baker.bake(torch.as_tensor(res.coeffs)[None], loaded.pixels, crop, 1024, dense_landmarks=dense)
            res = dataclasses.replace(res, albedo_texture=baked.texture)
        yield name, res


def _render(res, size: int, folder: Path) -> list[Path]:
    import bpy

    from msma_blender.conversion import points_to_blender
    from msma_blender.face_builder import BuildOptions, build_face_object

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    obj = build_face_object(res, scene.collection, BuildOptions(lighting=0.0))
    obj.matrix_world.identity()
    world = bpy.data.worlds.new("white")
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
    scene.world = world
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 12
    scene.cycles.use_denoising = False
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.film_transparent = False
    scene.view_settings.view_transform = "Standard"
    v = points_to_blender(res.vertices_neutral)
    centre = (0.0, float(v[:, 1].mean()), float(v[:, 2].max()) - 0.12)  # about eye level
    cam_data = bpy.data.cameras.new("sheet")
    cam_data.lens = 85.0
    cam = bpy.data.objects.new("sheet", cam_data)
    scene.collection.objects.link(cam)
    scene.camera = cam
    keys = obj.data.shape_keys.key_blocks
    fitted = {k.name: k.value for k in keys}
    out = []
    for view in VIEWS:
        angle = {"3/4": 45.0, "profile": 90.0}.get(view, 0.0)
        a = math.radians(angle)
        d = 0.75
        cam.location = (centre[0] + d * math.sin(a), centre[1] - d * math.cos(a), centre[2])
        cam.rotation_euler = (math.pi / 2, 0.0, a)
        for k in keys:
            if k.name in fitted:
                k.value = 0.0 if view in ("blink", "mouth closed") else fitted[k.name]
        if view == "blink":
            for name in ("eyeBlinkLeft", "eyeBlinkRight"):
                if name in keys:
                    keys[name].value = 1.0
        path = folder / f"{len(out)}.png"
        scene.render.filepath = str(path)
        bpy.ops.render.render(write_still=True)
        out.append(path)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--size", type=int, default=320)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, res in _results():
            folder = Path(tmp) / name
            folder.mkdir()
            tiles = [Image.open(p).convert("RGB") for p in _render(res, args.size, folder)]
            tex = Image.fromarray(res.albedo_texture).crop((200, 50, 850, 700)).resize((args.size, args.size))
            rows.append((name, tiles + [tex]))
    s = args.size
    sheet = Image.new("RGB", (s * 6, (s + 20) * len(rows) + 20), "white")
    draw = ImageDraw.Draw(sheet)
    for j, label in enumerate(VIEWS + ("albedo (face crop)",)):
        draw.text((j * s + 4, 4), label, fill="black")
    for i, (name, tiles) in enumerate(rows):
        y = 20 + i * (s + 20)
        draw.text((4, y + 2), name, fill="black")
        for j, t in enumerate(tiles):
            sheet.paste(t, (j * s, y + 16))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
