"""Render a reconstructed face headless to PNG through its photo camera (a screenshot-equivalent check).

Cycles on the CPU is used: it works without a display and evaluates the material's
SH-lighting node group. A uniform white world makes the shaded colour equal to the
material's base colour (albedo × photo lighting), so the render looks like the photo's
face; the background is transparent.
"""

from __future__ import annotations

import logging
from pathlib import Path

import bpy

__all__ = ["render_preview"]

log = logging.getLogger(__name__)


def render_preview(scene: bpy.types.Scene, camera: bpy.types.Object, path: str | Path, max_size: int = 512,
                   samples: int = 16, photo: str | Path | None = None) -> Path:
    """Render ``scene`` through ``camera`` to a PNG.

    Args:
        scene: the scene holding the face (its render settings and world are changed).
        camera: camera object; its ``msma_resolution`` (photo size) sets the aspect.
        path: output PNG.
        max_size: longer image side in pixels.
        samples: Cycles samples.
        photo: when given, the render is composited over this photo (alignment check).

    Returns:
        The written path.
    """
    path = Path(path).resolve()
    w, h = camera.data.get("msma_resolution", (max_size, max_size))
    scale = max_size / max(w, h)
    render = scene.render
    render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = int(samples)
    scene.cycles.use_denoising = False
    render.resolution_x, render.resolution_y = max(1, round(w * scale)), max(1, round(h * scale))
    render.resolution_percentage = 100
    render.film_transparent = True
    render.image_settings.file_format = "PNG"
    render.image_settings.color_mode = "RGBA"
    render.filepath = str(path)
    scene.camera = camera
    if scene.world is None:
        world = bpy.data.worlds.new("MSMA Preview World")
        if bpy.app.version < (5, 0, 0):  # worlds always use nodes from Blender 5.0
            world.use_nodes = True
        bg = world.node_tree.nodes.get("Background")
        bg.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
        bg.inputs["Strength"].default_value = 1.0
        scene.world = world
    path.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.render.render(write_still=True, scene=scene.name)
    if photo is not None:
        _composite_over(path, Path(photo))
    log.info("preview written to %s", path)
    return path


def _composite_over(render_path: Path, photo: Path) -> None:
    """Replace the PNG by the render (with its alpha) over the photo scaled to the same size."""
    from PIL import Image, ImageOps

    fg = Image.open(render_path).convert("RGBA")
    with Image.open(photo) as im:
        bg = ImageOps.exif_transpose(im).convert("RGBA").resize(fg.size, Image.LANCZOS)
    Image.alpha_composite(bg, fg).convert("RGB").save(render_path)
