"""Overlay image: the fitted face rendered over the photo region around the face, with the
detected and the fitted landmarks.

The mesh is rendered through the result's :class:`~msma_engine.result.PhotoCamera` in a window
around the face (so large photos stay cheap), shaded like the fit: the result's albedo
texture (sampled through the UVs) times the fitted SH irradiance, both in the photo's
sRGB-encoded space, and alpha-blended onto the photo. A flat grey albedo under that light
looked pale and grey against the skin, since the fitted light carries the photo's
brightness and the albedo its colour. Detected landmarks are drawn in green, fitted ones
in red.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from msma_engine.camera import PerspectiveCamera
from msma_engine.errors import ShapeError
from msma_engine.geometry import vertex_normals
from msma_engine.render import RenderContext, interpolate, rasterize, texture
from msma_engine.result import FaceResult
from msma_engine.shading import sh_irradiance

__all__ = ["render_overlay", "DETECTED_COLOR", "FITTED_COLOR"]

DETECTED_COLOR = (40, 220, 40)
FITTED_COLOR = (230, 40, 40)


def _window(result: FaceResult, shape: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    """Pixel window ``x0, y0, x1, y1`` around the projected mesh, clipped to the photo."""
    h, w = shape
    cam = result.camera
    v = np.asarray(result.vertices_world, dtype=np.float64)
    z = cam.distance - v[:, 2]
    ok = z > 1e-6
    u = cam.center[0] + cam.focal * v[ok, 0] / z[ok]
    vv = cam.center[1] - cam.focal * v[ok, 1] / z[ok]
    x0, x1, y0, y1 = u.min(), u.max(), vv.min(), vv.max()
    pad = margin * max(x1 - x0, y1 - y0)
    x0, y0 = int(np.floor(max(x0 - pad, 0))), int(np.floor(max(y0 - pad, 0)))
    x1, y1 = int(np.ceil(min(x1 + pad, w))), int(np.ceil(min(y1 + pad, h)))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def render_overlay(
    photo: np.ndarray,
    result: FaceResult,
    *,
    alpha: float = 0.6,
    max_render_size: int = 768,
    window_margin: float = 0.35,
    output_size: int = 768,
    ctx: RenderContext | None = None,
) -> np.ndarray:
    """Composite the fitted face and both landmark sets over the photo.

    Args:
        photo: ``(H, W, 3)`` uint8 RGB, the photo ``result`` was reconstructed from.
        result: the reconstruction (its camera must match ``photo``'s size).
        alpha: opacity of the render.
        max_render_size: longest side of the rendered window (larger windows are rendered
            at reduced resolution and upscaled).
        window_margin: margin around the projected mesh, as a fraction of its size.
        output_size: longest side of the returned image.
        ctx: render context (torch backend by default).

    Returns:
        ``(H', W', 3)`` uint8 RGB: the photo region around the face, scaled so its longest
        side is ``output_size``.
    """
    img = np.asarray(photo)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ShapeError(f"photo must be (H, W, 3) uint8, got {img.dtype} {img.shape}")
    if tuple(img.shape[:2]) != tuple(result.camera.image_size):
        raise ShapeError(f"photo size {img.shape[:2]} does not match the result's camera {result.camera.image_size}")
    x0, y0, x1, y1 = _window(result, img.shape[:2], margin=window_margin)
    out = img[y0:y1, x0:x1].astype(np.float32) / 255.0
    ww, wh = x1 - x0, y1 - y0
    scale = min(1.0, max_render_size / max(ww, wh))
    rw, rh = max(1, round(ww * scale)), max(1, round(wh * scale))
    cam = result.camera
    window_cam = PerspectiveCamera(
        focal=cam.focal * scale,
        center=((cam.center[0] - x0) * scale, (cam.center[1] - y0) * scale),
        image_size=(rh, rw), distance=cam.distance,
    )
    ctx = ctx or RenderContext("torch")
    with torch.no_grad():
        verts = torch.as_tensor(np.asarray(result.vertices_world, dtype=np.float32))[None]
        tris = torch.as_tensor(np.asarray(result.triangles, dtype=np.int64))
        frags = rasterize(ctx, window_cam.world_to_clip(verts), tris, (rh, rw), cull_backfaces=True)
        normals = interpolate(vertex_normals(verts, tris), frags, tris)
        normals = normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        uv = interpolate(torch.as_tensor(np.asarray(result.uv_coords, dtype=np.float32)), frags,
                         torch.as_tensor(np.asarray(result.uv_triangles, dtype=np.int64)))
        tex = torch.as_tensor(np.asarray(result.albedo_texture, dtype=np.float32) / 255.0)[None]
        albedo = texture(tex, uv, boundary="clamp")
        gamma = torch.as_tensor(np.asarray(result.sh_coeffs, dtype=np.float32))[None]
        rgb = (albedo * sh_irradiance(normals, gamma)).clamp(0.0, 1.0)[0].numpy()
        mask = frags.mask[0].float().numpy()
    if (rh, rw) != (wh, ww):
        rgb = cv2.resize(rgb, (ww, wh), interpolation=cv2.INTER_LINEAR)
        mask = cv2.resize(mask, (ww, wh), interpolation=cv2.INTER_LINEAR)
    a = (alpha * mask)[..., None]
    out = out * (1.0 - a) + np.clip(rgb, 0.0, 1.0) * a
    out8 = (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    factor = output_size / max(ww, wh)
    out8 = cv2.resize(out8, (max(1, round(ww * factor)), max(1, round(wh * factor))),
                      interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    radius = max(1, round(0.005 * output_size))
    for points, color in ((result.detected_landmarks, DETECTED_COLOR), (result.landmarks_2d, FITTED_COLOR)):
        for x, y in (np.asarray(points, dtype=np.float64) - (x0, y0)) * factor:
            if np.isfinite(x) and np.isfinite(y):
                # Pixel centres are at +0.5 (docs/CONVENTIONS.md); cv2 draws at integer centres.
                cv2.circle(out8, (int(round(x - 0.5)), int(round(y - 0.5))), radius, color, -1, cv2.LINE_AA)
    return out8
