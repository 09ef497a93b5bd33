"""Texture baking: unwrap the photo into the face model's UV layout as a clean albedo.

For every texel the fitted surface point is found by rasterizing the UV layout
(:func:`~msma_engine.render.rasterize_uv`) and interpolating the posed vertices over it. The
point is projected into the photo at full resolution (through the model camera on the 224
crop, then the crop's inverse affine map), kept where it is visible (depth test against a
rendered depth buffer), facing the camera and inside the model's face region (scalp, neck
and ears show hair, background or clothes too often), sampled bilinearly, and divided by
the fitted SH irradiance (floored, its colour held near the face's median) to give albedo.

Only skin, brows and lips are taken from the photo: the photo's sampling mask
(:mod:`msma_engine.photo_mask`: landmarks + a skin-colour model fitted on the cheeks) drops
hair, eyes, teeth, nostrils, glasses and background, so eyelid and inner-lip texels the
photo cannot show at the fitted expression are filled too; glare is subtracted or dropped
(:mod:`msma_engine.delight`).

What the photo cannot show is filled in two steps: from the mirrored surface point
(``x → −x``, a nearest-vertex mirror map on the mean shape; used where the mirror point is
itself usable), then from the model's albedo, colour-matched to the visible skin (the
person's colour over scalp, ears and neck). The photo region, extended into its holes by
push-pull, is joined to that fill by a multi-band blend (:mod:`msma_engine.blending`), and
visibility edges are feathered, so there is no border. Texels outside every UV triangle take
the colour of the nearest covered texel (edge padding, so filtering at island borders stays
on-colour). Sizes above ``full_detail_size`` are sampled at the resolution the photo's face
supports and scaled up.

Colours stay in the photo's (sRGB-encoded) space, as in the fitting's photometric loss;
the output is ``uint8`` ``(S, S, 3)``, row 0 at the top (docs/CONVENTIONS.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from scipy.spatial import cKDTree

from msma_engine.align import CropTransform
from msma_engine.blending import multiband_blend, pyramid_levels, push_pull
from msma_engine.delight import SpecularSettings, remove_specular
from msma_engine.errors import ShapeError
from msma_engine.face_model import FaceModel
from msma_engine.photo_mask import EXCLUDED, SKIN, PhotoMask, skin_sampling_mask
from msma_engine.render import RenderContext, rasterize_uv, render_mesh
from msma_engine.shading import sh_irradiance
from msma_engine.timing import Stopwatch

__all__ = ["BakeSettings", "BakeOutput", "TextureBaker", "mirror_vertex_map"]

logger = logging.getLogger(__name__)

MIN_TEXTURE_SIZE, MAX_TEXTURE_SIZE = 64, 4096


@dataclass(frozen=True)
class BakeSettings:
    """Knobs of :class:`TextureBaker`.

    Attributes:
        facing_min, facing_full: cosine between normal and view direction where the photo's
            weight starts to rise from 0 and where it reaches 1.
        depth_tolerance: metres a texel may lie behind the rendered depth and still count
            as visible.
        feather: texels over which weights ramp up from a visibility edge, at 1024²
            (scaled with the texture size).
        min_irradiance: floor of the SH irradiance divided out (avoids blow-ups in shadow).
        relative_irradiance: a second floor, as a fraction of the face's median irradiance.
        irradiance_tint: largest relative deviation of a texel's irradiance colour from the
            face's median irradiance colour (per channel).
        match_radius: Gaussian sigma, texels at 1024², of the local colour match of the
            model-albedo fill to the photo skin.
        match_falloff: texels at 1024² over which the local match fades (1/e) away from
            the photo skin.
        coarsest_band: side, in texels, of the coarsest level of the multi-band blend of the
            photo region into the fill (the widest transition).
        photo_mask: sample only skin, brows and lips (:mod:`msma_engine.photo_mask`; needs a
            model with the iBUG 68 landmark layout); False = every visible face-region texel.
        full_detail_size, max_density: a texture larger than ``full_detail_size`` is sampled
            at half size (repeatedly, not below ``full_detail_size``) and scaled up while the face
            would get more than ``max_density`` texels per photo pixel (no detail to gain).
        specular: thresholds of the highlight removal (:mod:`msma_engine.delight`).
    """

    facing_min: float = 0.15
    facing_full: float = 0.45
    depth_tolerance: float = 0.004
    feather: float = 12.0
    min_irradiance: float = 0.15
    relative_irradiance: float = 0.6
    irradiance_tint: float = 0.05
    match_radius: float = 16.0
    match_falloff: float = 64.0
    coarsest_band: int = 16
    photo_mask: bool = True
    full_detail_size: int = 1024
    max_density: float = 2.0
    specular: SpecularSettings = field(default_factory=SpecularSettings)


@dataclass
class BakeOutput:
    """Result of :meth:`TextureBaker.bake`.

    Attributes:
        texture: ``(S, S, 3)`` uint8 albedo, row 0 at the top.
        coverage: fraction of the UV-covered texels taken from the photo directly.
        mirrored: fraction filled from the mirrored side.
        photo_mask: the photo's sampling mask (:mod:`msma_engine.photo_mask`).
        specular: fraction of the photo texels whose highlight was subtracted or filled.
        seam: colour step where the photo-derived skin meets the model-albedo fill, 8-bit
            units (mean over the boundary of the local median colour difference between fill
            texels next to the photo region and their nearest pure-photo skin texels; NaN when
            either side is empty).
        timings: seconds per step.
    """

    texture: np.ndarray
    coverage: float
    mirrored: float
    photo_mask: PhotoMask | None = None
    specular: float = 0.0
    seam: float = float("nan")
    timings: dict[str, float] = field(default_factory=dict)


def mirror_vertex_map(vertices: np.ndarray) -> np.ndarray:
    """Index of each vertex's left-right counterpart: the nearest vertex to ``(−x, y, z)``.

    Args:
        vertices: ``(V, 3)`` a symmetric-ish shape in the model frame (e.g. the mean shape).

    Returns:
        ``(V,)`` int64.
    """
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ShapeError(f"vertices must be (V, 3), got {v.shape}")
    return cKDTree(v).query(v * np.array([-1.0, 1.0, 1.0]))[1].astype(np.int64)


def _sample_points(image: np.ndarray, points: np.ndarray, interpolation: int, border: float) -> np.ndarray:
    """Sample ``image`` ``(H, W[, C])`` at continuous pixel ``points`` ``(N, 2)`` → ``(N[, C])``.

    ``cv2.remap`` puts pixel centres on integers (ours are at +0.5) and limits maps to
    32767 rows, so the points are laid out in rows of 1024.
    """
    n = points.shape[0]
    rows = -(-n // 1024)
    pad = np.zeros((rows * 1024, 2), np.float32)
    pad[:n] = points - 0.5
    mx, my = pad[:, 0].reshape(rows, 1024), pad[:, 1].reshape(rows, 1024)
    channels = image.shape[2] if image.ndim == 3 else 1
    out = cv2.remap(image, mx, my, interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=(border,) * channels)
    return out.reshape(rows * 1024, *image.shape[2:])[:n]


def _fill_from_nearest(tex: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Give every uncovered texel the colour of the nearest covered one (edge padding).

    Keeps bilinear filtering and mipmaps on-colour at UV island borders.
    """
    if covered.all() or not covered.any():
        return tex
    _, nearest = _nearest_marked(covered)
    return tex.reshape(-1, 3)[nearest].reshape(tex.shape)


def _nearest_marked(marked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every texel of a ``(H, W)`` bool mask: distance to and flat index of the nearest marked texel.

    Returns:
        ``(H*W,)`` float32 distances in texels (0 on marked texels) and ``(H*W,)`` int64 flat indices.
    """
    # Label = the nearest zero pixel of the source; the marked texels are the zeros.
    dist, labels = cv2.distanceTransformWithLabels((~marked).astype(np.uint8), cv2.DIST_L2, 3,
                                                   labelType=cv2.DIST_LABEL_PIXEL)
    labels = labels.reshape(-1)
    marked_idx = np.flatnonzero(marked.reshape(-1))
    lut = np.zeros(int(labels.max()) + 1, np.int64)
    lut[labels[marked_idx]] = marked_idx
    return dist.reshape(-1), lut[labels]


def _skin_statistics_texels(albedo: np.ndarray, weight: np.ndarray, skin: np.ndarray,
                            min_weight: float = 0.9, spread: float = 2.5) -> np.ndarray:
    """Texels whose photo albedo is plain skin: photo weight, on the skin mask, not an outlier.

    The skin mask still takes in brows, lashes, lips and (on the forehead) hair, and the
    photo adds highlights and shadows; those are cut as outliers in log colour: a texel is
    kept when every channel lies within ``spread`` robust standard deviations (1.4826 MAD)
    of the median.

    Args:
        albedo: ``(N, 3)`` photo albedo.
        weight: ``(N,)`` photo weight.
        skin: ``(N,)`` bool skin mask.
        min_weight: least photo weight of a texel kept.
        spread: outlier bound in robust standard deviations.

    Returns:
        ``(N,)`` bool.
    """
    keep = skin & (weight > min_weight) & (albedo.min(-1) > 1e-3)
    if keep.sum() < 20:
        return keep
    log = np.log(np.maximum(albedo[keep], 1e-3))
    med = np.median(log, axis=0)
    sigma = 1.4826 * np.median(np.abs(log - med), axis=0) + 1e-3
    ok = (np.abs(log - med) <= spread * sigma).all(-1)
    out = np.zeros_like(keep)
    out[np.flatnonzero(keep)[ok]] = True
    return out

@dataclass
class _UVLayout:
    """Per-texture-size constants: which texels are covered, by which triangle, where."""

    covered: torch.Tensor  # (S, S) bool
    index: torch.Tensor  # (N,) flat texel index of covered texels
    tri: torch.Tensor  # (N,) triangle id
    bary: torch.Tensor  # (N, 3)
    skin: torch.Tensor  # (N,) interpolated skin mask
    face: torch.Tensor  # (N,) interpolated face-region mask


class TextureBaker:
    """Bakes photo albedo textures for one face model; caches the UV rasterization per size.

    Args:
        model: the face model.
        settings: :class:`BakeSettings`.
        ctx: render context.
    """

    def __init__(self, model: FaceModel, settings: BakeSettings | None = None, ctx: RenderContext | None = None):
        self.model = model
        self.settings = settings or BakeSettings()
        self.ctx = ctx or RenderContext("torch")
        self.mirror = torch.as_tensor(mirror_vertex_map(model.mean_shape.cpu().numpy()), device=model.mean_shape.device)
        self._layouts: dict[int, _UVLayout] = {}
        self._face_crop_area: float | None = None

    def _layout(self, size: int) -> _UVLayout:
        if size not in self._layouts:
            m = self.model
            frags = rasterize_uv(self.ctx, m.uv_coords, m.uv_triangles, (size, size))
            covered = frags.triangle_id[0] >= 0
            index = torch.nonzero(covered.reshape(-1))[:, 0]
            tri = frags.triangle_id[0].reshape(-1)[index]
            bary = frags.barycentrics[0].reshape(-1, 3)[index].detach()
            skin = (m.skin_mask[m.triangles[tri]] * bary).sum(-1)
            face = (m.face_region.float()[m.triangles[tri]] * bary).sum(-1)
            self._layouts[size] = _UVLayout(covered, index, tri, bary, skin, face)
        return self._layouts[size]

    def _interp(self, lay: _UVLayout, attr: torch.Tensor, tri_vertices: torch.Tensor | None = None) -> torch.Tensor:
        """Per-texel value ``(N, C)`` of per-vertex ``attr`` ``(V, C)``."""
        tv = self.model.triangles[lay.tri] if tri_vertices is None else tri_vertices
        return torch.einsum("nkc,nk->nc", attr[tv], lay.bary)

    @torch.no_grad()
    def bake(self, coeffs: torch.Tensor, photo: np.ndarray, crop: CropTransform, size: int = 1024,
             dense_landmarks: np.ndarray | None = None) -> BakeOutput:
        """Bake the albedo texture of the face ``coeffs`` describes in ``photo``.

        Args:
            coeffs: ``(1, C)`` fitted coefficients (pose on the 224 crop of ``crop``).
            photo: ``(H, W, 3)`` uint8 RGB at full resolution.
            crop: the photo → crop transform the coefficients were fitted on.
            size: texture side, 64-4096 (512-2048 is the useful range).
            dense_landmarks: ``(478, 2)`` MediaPipe Face Mesh points in photo pixels, or None:
                the sampling mask then comes from the fitted mesh's 68 landmarks, projected.

        Returns:
            :class:`BakeOutput`.
        """
        if not MIN_TEXTURE_SIZE <= int(size) <= MAX_TEXTURE_SIZE:
            raise ValueError(f"texture size must be within {MIN_TEXTURE_SIZE}-{MAX_TEXTURE_SIZE}, got {size}")
        img = np.asarray(photo)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ShapeError(f"photo must be (H, W, 3) uint8, got {img.dtype} {img.shape}")
        st, m = self.settings, self.model
        size = int(size)
        sampled = self._sampling_size(size, crop)
        if sampled < size:
            # The photo has no detail for this many texels: bake at a size it supports and
            # scale up (the cost of a 2048² texture from a small face is that of 1024²).
            res = self.bake(coeffs, photo, crop, sampled, dense_landmarks)
            clock = Stopwatch()
            res.texture = cv2.resize(res.texture, (size, size), interpolation=cv2.INTER_CUBIC)
            res.timings["bake_upscale"] = clock.elapsed
            res.timings["bake"] += res.timings["bake_upscale"]
            return res
        timings: dict[str, float] = {}
        clock = Stopwatch()
        lay = self._layout(size)
        timings["bake_uv"] = clock.lap()

        out = m(coeffs)
        verts, normals = out.vertices[0], out.normals[0]
        gamma = m.layout.split(coeffs).gamma
        # Depth buffer on the crop camera, at about the photo's resolution of the face (capped).
        k = float(np.clip(1.0 / crop.scale, 1.0, 1.5))
        cam = m.camera.scaled(k)
        depth_map = render_mesh(self.ctx, out.vertices, m.triangles, cam.image_size, project=cam.world_to_clip,
                                colors=out.vertex_colors, normals=out.normals).depth[0, ..., 0].cpu().numpy()
        timings["bake_depth"] = clock.lap()

        mask = None
        if st.photo_mask:
            landmarks = (crop.inverse(out.landmarks_2d[0].cpu().double().numpy()) if dense_landmarks is None
                         else np.asarray(dense_landmarks, np.float64)[:, :2])
            mask = skin_sampling_mask(img, landmarks)
        timings["bake_mask"] = clock.lap()

        photo_f = img.astype(np.float32) / 255.0

        # Outside the face region (scalp, neck, ears) the photo shows hair, background or
        # clothes as often as skin: those texels come from the fill, so only the face texels
        # are sampled at all; inside it the photo mask keeps skin, brows and lips only.
        sel = torch.nonzero(lay.face > 0.5)[:, 0]
        bary = lay.bary[sel]

        def sample(tri_vertices: torch.Tensor) -> tuple[np.ndarray, ...]:
            """At the selected texels: photo albedo ``(n, 3)``; geometric weight (facing, visible),
            photo-mask weight, label and clipped flag ``(n,)``."""
            p = torch.einsum("nkc,nk->nc", verts[tri_vertices], bary)
            n = torch.einsum("nkc,nk->nc", normals[tri_vertices], bary)
            n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            view = torch.tensor([0.0, 0.0, cam.distance], device=p.device) - p
            facing = (n * view).sum(-1) / view.norm(dim=-1).clamp_min(1e-12)
            w = ((facing - st.facing_min) / (st.facing_full - st.facing_min)).clamp(0.0, 1.0)
            z = cam.depth(p)
            q = cam.project(p).cpu().numpy()  # crop pixels at scale k
            # Depth test against the nearest depth-buffer pixel.
            zbuf = _sample_points(depth_map, q, cv2.INTER_NEAREST, 0.0)
            visible = (zbuf > 0) & (z.cpu().numpy() <= zbuf + st.depth_tolerance)
            xy = crop.inverse(q / k)  # photo pixels
            colour = _sample_points(photo_f, xy, cv2.INTER_LINEAR, -1.0)
            inside = colour.min(-1) >= 0.0
            if mask is None:
                mask_w, label = np.ones(len(xy), np.float32), np.full(len(xy), SKIN, np.uint8)
            else:
                at = xy - np.asarray(mask.origin, np.float64)
                mask_w = _sample_points(mask.weight, at, cv2.INTER_LINEAR, 0.0)
                label = _sample_points(mask.label, at, cv2.INTER_NEAREST, EXCLUDED)
            irr = sh_irradiance(n[None], gamma)[0].cpu().numpy()
            weight = w.cpu().numpy() * visible * inside
            # Floor the irradiance (its mean over channels, colour kept) at min_irradiance and
            # at relative_irradiance × the face's median: where the fitted SH darkens a surface
            # the photo shows lit (deep lids, nostril rims) dividing it out blows up.
            lum = np.maximum(irr.mean(-1), 1e-6)
            front = weight > 0.5
            floor = max(st.min_irradiance,
                        st.relative_irradiance * float(np.median(lum[front])) if front.any() else 0.0)
            irr = irr * np.maximum(1.0, floor / lum)[:, None]
            # Keep the irradiance's colour within ±irradiance_tint of the face's median colour:
            # a coloured SH band fitted on a few pixels tints deep lids and brow ridges (the old
            # bake's "yellow glare" on the lids was this, not glare in the photo).
            tint = irr / np.maximum(irr.mean(-1, keepdims=True), 1e-6)
            if front.any():
                med = np.median(tint[front], axis=0)
                tint = med * np.clip(tint / med, 1.0 - st.irradiance_tint, 1.0 + st.irradiance_tint)
                irr = tint * irr.mean(-1, keepdims=True)
            return np.clip(colour, 0.0, None) / irr, weight, mask_w, label, colour.max(-1) >= 250.0 / 255.0

        n_tex = lay.index.shape[0]
        sel_np = sel.cpu().numpy()
        direct, w_direct = np.zeros((n_tex, 3), np.float32), np.zeros(n_tex, np.float32)
        mirrored, w_mirror = np.zeros((n_tex, 3), np.float32), np.zeros(n_tex, np.float32)
        keep_direct, keep_mirror = np.zeros(n_tex, np.float32), np.zeros(n_tex, np.float32)
        label = np.full(n_tex, EXCLUDED, np.uint8)
        tri_v = m.triangles[lay.tri[sel]]
        d_alb, w_direct[sel_np], d_mask, label[sel_np], d_clip = sample(tri_v)
        direct[sel_np], d_keep, s_direct = remove_specular(d_alb, w_direct[sel_np] * d_mask, label[sel_np], d_clip,
                                                           st.specular)
        keep_direct[sel_np] = d_mask * d_keep
        m_alb, w_mirror[sel_np], m_mask, m_lab, m_clip = sample(self.mirror[tri_v])
        mirrored[sel_np], m_keep, _ = remove_specular(m_alb, w_mirror[sel_np] * m_mask, m_lab, m_clip, st.specular)
        keep_mirror[sel_np] = m_mask * m_keep
        seen = w_direct[sel_np] * d_mask > 0.05
        specular = float(((s_direct > 0) | (d_keep < 0.5))[seen].sum() / max(seen.sum(), 1))
        timings["bake_sample"] = clock.lap()

        # Visibility edges are feathered; the photo mask's holes (soft already) are left to
        # the multi-band blend, so pores and stray hairs do not eat a feather ramp each.
        w_direct = self._feather(lay, w_direct, size) * keep_direct
        w_mirror = self._feather(lay, w_mirror, size) * keep_mirror
        prior = self._model_albedo(lay, out, coeffs, size)
        model_skin = lay.skin.cpu().numpy() > 0.5
        skin = model_skin & (label == SKIN)
        stats = _skin_statistics_texels(direct, w_direct, skin)
        if stats.sum() >= 20:
            # The local match also takes the feather ramp's texels: they are the photo colour
            # that meets the fill.
            edge = _skin_statistics_texels(direct, w_direct, skin, min_weight=0.3)
            prior = prior * self._colour_match(lay, direct, prior, stats, edge, size)
        else:
            logger.warning("almost no skin visible for baking; the texture comes from the model albedo")
        fill = w_mirror[:, None] * mirrored + (1.0 - w_mirror[:, None]) * prior

        # Multi-band blend of the photo (extended into its holes) into the fill.
        idx = lay.index.cpu().numpy()
        covered = lay.covered.cpu().numpy()
        photo_tex = np.zeros((size * size, 3), np.float32)
        photo_tex[idx] = direct
        weight_tex = np.zeros(size * size, np.float32)
        weight_tex[idx] = w_direct
        fill_tex = np.zeros((size * size, 3), np.float32)
        fill_tex[idx] = fill
        fill_tex = _fill_from_nearest(fill_tex.reshape(size, size, 3), covered)
        photo_ext = push_pull(photo_tex.reshape(size, size, 3), weight_tex.reshape(size, size))
        tex = multiband_blend(photo_ext, fill_tex, weight_tex.reshape(size, size),
                              pyramid_levels(size, st.coarsest_band))
        tex = np.clip(tex, 0.0, 1.0).reshape(-1, 3)
        albedo = tex[idx]
        tex = np.zeros((size * size, 3), np.float32)
        tex[idx] = albedo
        tex = _fill_from_nearest(tex.reshape(size, size, 3), covered)
        texture = (tex * 255.0 + 0.5).astype(np.uint8)
        timings["bake_fill"] = clock.lap()
        timings["bake"] = clock.elapsed
        n = max(len(w_direct), 1)
        return BakeOutput(texture=texture, coverage=float((w_direct > 0.5).sum() / n),
                          mirrored=float(((w_direct <= 0.5) & (w_mirror > 0.5)).sum() / n),
                          photo_mask=mask, specular=specular,
                          seam=self._seam(lay, texture, np.maximum(w_direct, w_mirror),
                                          _skin_statistics_texels(direct, w_direct, skin),
                                          # The skin mask covers the face region only; scalp, neck and
                                          # ears are filled skin too.
                                          model_skin | (lay.face.cpu().numpy() <= 0.5), size), timings=timings)

    def _sampling_size(self, size: int, crop: CropTransform) -> int:
        """Texture side to sample the photo at: ``size`` halved (not below
        :attr:`BakeSettings.full_detail_size`) while the face region would get more than
        ``max_density`` texels per photo pixel (linear)."""
        st = self.settings
        if size <= st.full_detail_size:
            return size
        if self._face_crop_area is None:
            with torch.no_grad():
                m = self.model
                verts = m(m.layout.zeros(1, device=m.mean_shape.device)).vertices
                q = m.camera.project(verts)[0].cpu().double().numpy()
            tri = m.triangles.cpu().numpy()[m.face_region.cpu().numpy()[m.triangles.cpu().numpy()].all(1)]
            a, b, c = q[tri[:, 0]], q[tri[:, 1]], q[tri[:, 2]]
            area = 0.5 * np.abs((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0])
            self._face_crop_area = float(area.sum())  # crop pixels² of the mean face, frontal
        face_texels = float((self._layout(st.full_detail_size).face > 0.5).sum())
        face_texels_1024 = face_texels * (1024 / st.full_detail_size) ** 2
        photo_px = self._face_crop_area / crop.scale ** 2
        sampled = size
        while (sampled > st.full_detail_size
               and np.sqrt(face_texels_1024 * (sampled / 1024) ** 2 / photo_px) > st.max_density):
            sampled //= 2
        return max(sampled, st.full_detail_size)

    def _colour_match(self, lay: _UVLayout, direct: np.ndarray, prior: np.ndarray, stats: np.ndarray,
                      local_stats: np.ndarray, size: int) -> np.ndarray:
        """Per-texel gain ``(N, 3)`` that brings the model albedo to the photo skin's colour.

        A global gain (median log ratio photo/model over the ``stats`` texels) times a local
        one: the residual log ratio, smoothed over the ``local_stats`` texels (normalised
        Gaussian convolution), carried out from the nearest of them and faded to 1 over
        ``match_falloff`` texels. Next to the face the fill then continues the photo skin's
        local colour (shading residue, redness, tan lines) instead of stepping to a
        face-wide average; far from it the global match holds.
        """
        st = self.settings
        def log_ratio_at(sel: np.ndarray) -> np.ndarray:
            return np.log(np.maximum(direct[sel], 1e-3)) - np.log(np.maximum(prior[sel], 1e-3))

        glob = np.median(log_ratio_at(stats), axis=0)
        stats = local_stats
        log_ratio = log_ratio_at(stats)
        idx = lay.index.cpu().numpy()
        scale = size / 1024
        num = np.zeros((size * size, 3), np.float32)
        den = np.zeros(size * size, np.float32)
        num[idx[stats]] = log_ratio - glob
        den[idx[stats]] = 1.0
        sigma = st.match_radius * scale
        num = cv2.GaussianBlur(num.reshape(size, size, 3), (0, 0), sigma).reshape(-1, 3)
        den = cv2.GaussianBlur(den.reshape(size, size), (0, 0), sigma).reshape(-1)
        ref = np.zeros(size * size, bool)
        ref[idx[stats]] = True
        local = np.zeros((size * size, 3), np.float32)
        local[ref] = num[ref] / np.maximum(den[ref], 1e-6)[:, None]
        # Carry the skin texels' local residual outwards (nearest skin texel), fade it with the
        # distance, and smooth the Voronoi cells this leaves.
        dist, nearest = _nearest_marked(ref.reshape(size, size))
        fade = np.exp(-dist / (st.match_falloff * scale))[:, None]
        field = (local[nearest] * fade).reshape(size, size, 3)
        field = cv2.GaussianBlur(field, (0, 0), sigma).reshape(-1, 3)[idx]
        field[stats] = local[idx[stats]]
        return np.exp(np.clip(glob + field, np.log(0.25), np.log(4.0))).astype(np.float32)

    def _seam(self, lay: _UVLayout, texture: np.ndarray, photo_weight: np.ndarray, reference: np.ndarray,
              fill_region: np.ndarray, size: int) -> float:
        """Colour step across the photo/fill transition, 8-bit units.

        Each ``fill_region`` texel of pure fill (photo weight 0) within ``band`` texels of the photo
        region is paired with the nearest ``reference`` texel (plain photo skin, across the
        feather ramp; hair and brows at the face edge are no seam). Per block of 32² texels (at
        1024²) along the boundary the per-channel median of the pairs' colour differences is the
        local step (the median cancels the photo's skin detail, not a step); the result is the
        mean step length.
        """
        idx = lay.index.cpu().numpy()
        band = max(2.0, 4.0 * size / 1024)
        full = np.zeros(size * size, bool)
        full[idx] = reference
        some = np.zeros(size * size, np.uint8)
        some[idx] = photo_weight > 0.0
        if not full.any():
            return float("nan")
        # Distance of each texel to the photo region (any weight), and its nearest pure-photo texel.
        d_photo = cv2.distanceTransform((1 - some).reshape(size, size), cv2.DIST_L2, 3).reshape(-1)
        _, nearest = _nearest_marked(full.reshape(size, size))
        fill = np.zeros(size * size, bool)
        fill[idx] = (photo_weight <= 0.0) & fill_region
        fill &= (d_photo > 0) & (d_photo <= band)
        if not fill.any():
            return float("nan")
        fill_idx = np.flatnonzero(fill)
        tex = texture.reshape(-1, 3).astype(np.float32)
        diff = tex[fill_idx] - tex[nearest[fill_idx]]
        # Median step per block of the boundary (a step may change sign along it), then the
        # mean of the blocks' step lengths.
        block = max(8, size // 32)
        key = (fill_idx // size) // block * size + (fill_idx % size) // block
        order = np.argsort(key, kind="stable")
        _, starts = np.unique(key[order], return_index=True)
        steps = [np.linalg.norm(np.median(d, axis=0)) for d in np.split(diff[order], starts[1:])]
        return float(np.mean(steps))

    def _feather(self, lay: _UVLayout, weight: np.ndarray, size: int) -> np.ndarray:
        """Multiply ``weight`` by a ramp over the texel distance to the nearest unusable texel."""
        # Texels outside the UV islands count as usable: island borders are not visibility edges.
        img = np.ones(size * size, np.uint8)
        img[lay.index.cpu().numpy()] = (weight > 0.05).astype(np.uint8)
        dist = cv2.distanceTransform(img.reshape(size, size), cv2.DIST_L2, 3).reshape(-1)
        ramp = np.clip(dist[lay.index.cpu().numpy()] / (self.settings.feather * size / 1024), 0.0, 1.0)
        return weight * ramp

    def _model_albedo(self, lay: _UVLayout, out, coeffs: torch.Tensor, size: int) -> np.ndarray:
        """The model's albedo for ``coeffs`` at the covered texels, ``(N, 3)``."""
        m = self.model
        if m.albedo_space == "uv":
            alb = out.albedo[0].permute(2, 0, 1)[None]
            alb = torch.nn.functional.interpolate(alb, size=(size, size), mode="bilinear", align_corners=False)
            return alb[0].permute(1, 2, 0).reshape(-1, 3)[lay.index].cpu().numpy()
        return self._interp(lay, out.vertex_albedo[0]).cpu().numpy()
