"""Overlay image: the photo with its landmarks beside a clay render of the fitted geometry.

The check a user looks at must be able to show a wrong fit, so the main panel renders the
fitted **geometry** with a neutral clay material and a fixed light from the camera, over
the photo (semi-transparent, so the alignment shows) — a pursed mouth over a smile is
visible there. Panels, left to right:

1. ``photo``: the photo region around the face with the detected landmarks (green; the
   478 dense points when the fit used them, else the 68) and the fitted model's
   landmarks (red);
2. ``clay``: the clay-shaded fitted mesh over the photo, through the photo's camera, cut
   at the fitted jaw line (landmarks 0-16) so the model's neck does not cover the photo's
   collar (the photo shows no neck surface to check it against);
3. ``textured`` (optional): the baked albedo texture under the fitted SH light, as the
   exported asset looks (it paints the photo back onto itself, so it always looks
   plausible: not a check of the shape).

:func:`clay_views` renders the fitted head alone from the front, ¾ and profile.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from msma_engine.camera import PerspectiveCamera
from msma_engine.errors import ShapeError
from msma_engine.geometry import euler_to_rotation, vertex_normals
from msma_engine.render import RenderContext, interpolate, rasterize, texture
from msma_engine.result import FaceResult
from msma_engine.shading import sh_irradiance

__all__ = ["render_overlay", "clay_views", "clay_shade", "below_jaw_mask", "DETECTED_COLOR", "FITTED_COLOR",
           "CLAY_COLOR", "PANELS"]

DETECTED_COLOR = (40, 220, 40)
FITTED_COLOR = (230, 40, 40)
CLAY_COLOR = (0.78, 0.78, 0.78)
PANELS = ("photo", "clay", "textured")


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


def clay_shade(normals: torch.Tensor) -> torch.Tensor:
    """Clay colour ``(..., 3)`` of unit view-space normals ``(..., 3)`` (camera on +z).

    Lambert from a light above-left of the camera plus a head light and ambient, so every
    surface facing the camera is lit and creases read as shading.
    """
    key = torch.tensor([-0.35, 0.45, 0.82], dtype=normals.dtype, device=normals.device)
    key = key / key.norm()
    lum = 0.18 + 0.55 * (normals @ key).clamp_min(0) + 0.3 * normals[..., 2].clamp_min(0)
    return lum[..., None] * torch.tensor(CLAY_COLOR, dtype=normals.dtype, device=normals.device)


def _render_window(result: FaceResult, cam: PerspectiveCamera, size: tuple[int, int], ctx: RenderContext,
                   textured: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Clay ``(h, w, 3)``, mask ``(h, w)`` and (optionally) textured ``(h, w, 3)`` renders in [0, 1]."""
    with torch.no_grad():
        verts = torch.tensor(result.vertices_world, dtype=torch.float32)[None]
        tris = torch.tensor(result.topology.triangles, dtype=torch.int64)
        frags = rasterize(ctx, cam.world_to_clip(verts), tris, size, cull_backfaces=True)
        normals = interpolate(vertex_normals(verts, tris), frags, tris)
        normals = normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        # View space: the camera looks down −z from +z, so world normals are view normals.
        clay = clay_shade(normals)[0].clamp(0, 1).numpy()
        mask = frags.mask[0].float().numpy()
        tex_rgb = None
        if textured:
            uv = interpolate(torch.tensor(result.topology.uv_coords, dtype=torch.float32), frags,
                             torch.tensor(result.topology.uv_triangles, dtype=torch.int64))
            tex = torch.as_tensor(np.asarray(result.albedo_texture, dtype=np.float32) / 255.0)[None]
            albedo = texture(ctx, tex, uv, boundary="clamp")
            gamma = torch.tensor(result.sh_coeffs, dtype=torch.float32)[None]
            tex_rgb = (albedo * sh_irradiance(normals, gamma)).clamp(0.0, 1.0)[0].numpy()
    return clay, mask, tex_rgb


def render_overlay(
    photo: np.ndarray,
    result: FaceResult,
    *,
    alpha: float = 0.85,
    panels: tuple[str, ...] = ("photo", "clay"),
    max_render_size: int = 768,
    window_margin: float = 0.35,
    output_size: int = 768,
    ctx: RenderContext | None = None,
) -> np.ndarray:
    """The photo with landmarks beside the clay-shaded fitted geometry (see module doc).

    Args:
        photo: ``(H, W, 3)`` uint8 RGB, the photo ``result`` was reconstructed from.
        result: the reconstruction (its camera must match ``photo``'s size).
        alpha: opacity of the renders over the photo.
        panels: which panels, in order, from :data:`PANELS`.
        max_render_size: longest side of the rendered window (larger windows are rendered
            at reduced resolution and upscaled).
        window_margin: margin around the projected mesh, as a fraction of its size.
        output_size: longest side of each panel.
        ctx: render context (torch backend by default).

    Returns:
        ``(H', n·W', 3)`` uint8 RGB: the panels side by side, each the photo region around
        the face scaled so its longest side is ``output_size``.
    """
    img = np.asarray(photo)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ShapeError(f"photo must be (H, W, 3) uint8, got {img.dtype} {img.shape}")
    if tuple(img.shape[:2]) != tuple(result.camera.image_size):
        raise ShapeError(f"photo size {img.shape[:2]} does not match the result's camera {result.camera.image_size}")
    if not panels or any(p not in PANELS for p in panels):
        raise ValueError(f"panels must be a non-empty selection of {PANELS}, got {panels!r}")
    x0, y0, x1, y1 = _window(result, img.shape[:2], margin=window_margin)
    base = img[y0:y1, x0:x1].astype(np.float32) / 255.0
    ww, wh = x1 - x0, y1 - y0
    scale = min(1.0, max_render_size / max(ww, wh))
    rw, rh = max(1, round(ww * scale)), max(1, round(wh * scale))
    cam = result.camera
    window_cam = PerspectiveCamera(focal=cam.focal * scale, center=((cam.center[0] - x0) * scale,
                                                                    (cam.center[1] - y0) * scale),
                                   image_size=(rh, rw), distance=cam.distance)
    clay, mask, tex_rgb = _render_window(result, window_cam, (rh, rw), ctx or RenderContext("torch"),
                                         "textured" in panels)
    mask = mask * (1.0 - below_jaw_mask((np.asarray(result.landmarks_2d, np.float64) - (x0, y0)) * scale, (rh, rw)))
    factor = output_size / max(ww, wh)
    out_size = (max(1, round(ww * factor)), max(1, round(wh * factor)))

    def finish(rgb: np.ndarray | None) -> np.ndarray:
        out = base
        if rgb is not None:
            r, m = rgb, mask
            if (rh, rw) != (wh, ww):
                r = cv2.resize(rgb, (ww, wh), interpolation=cv2.INTER_LINEAR)
                m = cv2.resize(mask, (ww, wh), interpolation=cv2.INTER_LINEAR)
            a = (alpha * m)[..., None]
            out = base * (1.0 - a) + np.clip(r, 0.0, 1.0) * a
        out8 = (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        return cv2.resize(out8, out_size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)

    detected = result.detected_dense if result.detected_dense is not None else result.detected_landmarks
    fitted = result.landmarks_dense if result.landmarks_dense is not None else result.landmarks_2d
    out = []
    for name in panels:
        panel = finish({"photo": None, "clay": clay, "textured": tex_rgb}[name])
        if name == "photo":
            radius = max(1, round((0.0025 if detected is result.detected_dense else 0.005) * output_size))
            for points, color in ((detected, DETECTED_COLOR), (fitted, FITTED_COLOR)):
                _draw_points(panel, (np.asarray(points, dtype=np.float64) - (x0, y0)) * factor, color, radius)
        out.append(panel)
    return np.concatenate(out, axis=1)


def below_jaw_mask(landmarks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(h, w)`` float in [0, 1]: 1 below the jaw line, anti-aliased.

    The region is bounded by the jaw contour (iBUG landmarks 0-16) and, beyond its ends, by
    lines from landmarks 0 and 16 straight out sideways (perpendicular to the face's
    nose-bridge-to-chin direction, 27 → 8), so the neck and the collar below are covered
    whatever the head's roll.

    Args:
        landmarks: ``(68, 2)`` pixel coordinates (x right, y down) in the image of ``size``.
        size: ``(h, w)``.
    """
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2):
        raise ShapeError(f"landmarks must be (68, 2), got {lm.shape}")
    h, w = size
    down = lm[8] - lm[27]
    down /= max(np.linalg.norm(down), 1e-9)
    side = np.array([-down[1], down[0]])
    if side @ (lm[16] - lm[0]) < 0:
        side = -side
    far = 4.0 * (h + w)
    poly = np.vstack([lm[0] - far * side, lm[:17], lm[16] + far * side,
                      lm[16] + far * (side + down), lm[0] + far * (down - side)])
    out = np.zeros((h, w), np.uint8)
    shift = 4  # sub-pixel vertex precision for cv2
    cv2.fillPoly(out, [np.round((poly - 0.5) * (1 << shift)).astype(np.int32)], 255, cv2.LINE_AA, shift)
    return out.astype(np.float32) / 255.0


def _draw_points(image: np.ndarray, points: np.ndarray, color: tuple[int, int, int], radius: int) -> None:
    for x, y in points:
        if np.isfinite(x) and np.isfinite(y):
            # Pixel centres are at +0.5 (docs/CONVENTIONS.md); cv2 draws at integer centres.
            cv2.circle(image, (round(x - 0.5), round(y - 0.5)), radius, color, -1, cv2.LINE_AA)


def clay_views(result: FaceResult, size: int = 384, yaws_deg: tuple[float, ...] = (0.0, 45.0, 90.0),
               ctx: RenderContext | None = None) -> np.ndarray:
    """The fitted head (identity + expression, model frame) clay-shaded from several sides.

    Args:
        result: the reconstruction (``vertices_model`` is rendered; pose is dropped).
        size: side of each square view.
        yaws_deg: head turns about the vertical axis (0 = front, 90 = profile).
        ctx: render context.

    Returns:
        ``(size, len(yaws)·size, 3)`` uint8 RGB on a dark grey background.
    """
    ctx = ctx or RenderContext("torch")
    verts0 = torch.tensor(result.vertices_model, dtype=torch.float32)[None]
    tris = torch.tensor(result.topology.triangles, dtype=torch.int64)
    # Frame the face region's vertices: centre and extent of the model.
    centre = verts0[0].mean(0)
    extent = float((verts0[0] - centre).abs().max())
    cam = PerspectiveCamera(focal=size * 4.0, center=(size / 2, size / 2), image_size=(size, size), distance=1.0)
    dist = cam.focal * 1.05 * extent / (size / 2)
    views = []
    with torch.no_grad():
        for yaw in yaws_deg:
            rot = euler_to_rotation(torch.tensor([[0.0, np.deg2rad(yaw), 0.0]], dtype=torch.float32))
            verts = (verts0 - centre) @ rot.transpose(1, 2) + torch.tensor([0.0, 0.0, 1.0 - dist])
            frags = rasterize(ctx, cam.world_to_clip(verts), tris, (size, size), cull_backfaces=True)
            normals = interpolate(vertex_normals(verts, tris), frags, tris)
            normals = normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            rgb = clay_shade(normals)[0].clamp(0, 1).numpy()
            mask = frags.mask[0].numpy()[..., None]
            views.append(np.where(mask, rgb, 0.18))
    return (np.concatenate(views, axis=1) * 255 + 0.5).astype(np.uint8)
