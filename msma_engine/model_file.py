"""The face-model container: one ``.npz`` layout for every 3D morphable model.

A face model file is an uncompressed-or-compressed NumPy ``.npz`` archive with the
arrays below (V vertices, F triangles, T UV coordinates). Everything downstream —
network head sizes, shape keys, materials — reads its sizes from here.

=====================  ==================  =========================================
key                    shape / dtype       meaning
=====================  ==================  =========================================
format                 () str              ``"msma-face-model"``
version                () int              container version, currently 1
name                   () str              short model name (``"bfm09"``, ``"anny-head"``)
units                  () str              always ``"metre"``
mean_shape             (V, 3) float32      mean vertex positions, model frame, metres
id_basis               (Kid, V, 3) f32     identity basis, scaled so coefficients ~ N(0, 1)
exp_basis              (Kexp, V, 3) f32    expression basis (metres per unit coefficient)
expression_names       (Kexp,) str         one name per expression basis vector
expression_range       (Kexp, 2) f32       plausible [min, max] of each expression coefficient
albedo_space           () str              ``"vertex"`` or ``"uv"``
albedo_mean            (V, 3) or (H, W, 3) mean albedo, linear-ish RGB in [0, 1]
albedo_basis           (Ktex, V, 3) or     albedo basis, coefficients ~ N(0, 1)
                       (Ktex, H, W, 3)
triangles              (F, 3) int32        vertex indices, counter-clockwise seen from outside
uv_coords              (T, 2) float32      UV coordinates, origin bottom-left
uv_triangles           (F, 3) int32        indices into ``uv_coords``, same triangle order
landmark_indices       (68,) int32         vertex of each iBUG-300W landmark
skin_mask              (V,) float32        1 on skin used by the photometric loss, else 0
face_region            (V,) bool           vertices of the face area used for evaluation
metadata               () str              JSON: source, licence, build recipe, notes
=====================  ==================  =========================================

Optional keys (absent in models that lack them, e.g. BFM09; P polygons, Vi interior vertices):

=======================  ==================  =========================================
polygons                 (P, 4) int32        the source polygons (quads, or triangles padded
                                             with -1), counter-clockwise seen from outside;
                                             ``triangles`` must equal
                                             :func:`triangulate_polygons` of them
uv_polygons              (P, 4) int32        indices into ``uv_coords``, -1 where ``polygons`` is
source_index             (V,) int32          vertex of the source mesh each vertex came from
                                             (MakeHuman base mesh for the default head)
interior_mean_shape      (Vi, 3) float32     mouth interior (teeth, tongue) at the mean identity
interior_id_basis        (Kid, Vi, 3) f32    interior displacement per identity coefficient
interior_exp_basis       (Kexp, Vi, 3) f32   interior displacement per expression coefficient
interior_polygons        (Pi, 4) int32       interior polygons, -1 padded, CCW outward
interior_part            (Pi,) int32         index into ``interior_part_names`` per polygon
interior_part_names      (n,) str            e.g. ``upper_teeth``, ``lower_teeth``, ``tongue``
dense_landmark_vertices  (478, 3) int32      vertices of the surface point under each
                                             MediaPipe Face Mesh point (468 + 10 iris)
dense_landmark_weights   (478, 3) float32    its barycentric weights (rows sum to 1)
=======================  ==================  =========================================

Texture-space albedo arrays are stored with row 0 at the top of the texture
(see docs/CONVENTIONS.md). Sizes are checked on load; any inconsistency raises
:class:`msma_engine.errors.ModelFileError` naming the file and the offending key.
"""

from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from msma_engine.errors import ModelFileError

__all__ = ["FaceModelData", "load_face_model_data", "save_face_model_data", "triangulate_polygons",
           "FORMAT", "VERSION"]

log = logging.getLogger(__name__)

FORMAT = "msma-face-model"
VERSION = 1
N_LANDMARKS = 68
N_DENSE_LANDMARKS = 478


def triangulate_polygons(polygons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fan-triangulate polygons of 3 or 4 corners (quads split along the 0-2 diagonal).

    Args:
        polygons: (P, 4) int, a triangle's fourth corner is -1.

    Returns:
        ``triangles`` (F, 3) int64 in polygon order (a quad gives ``(0, 1, 2), (0, 2, 3)``)
        and ``polygon_of`` (F,) int64, the polygon each triangle comes from.
    """
    polys = np.asarray(polygons, dtype=np.int64)
    is_quad = polys[:, 3] >= 0
    first = polys[:, [0, 1, 2]]
    second = polys[:, [0, 2, 3]]
    tris = np.stack([first, second], axis=1).reshape(-1, 3)
    poly_of = np.repeat(np.arange(len(polys)), 2)
    keep = np.stack([np.ones(len(polys), bool), is_quad], axis=1).reshape(-1)
    return tris[keep], poly_of[keep]


@dataclass
class FaceModelData:
    """In-memory face-model arrays (NumPy), exactly the container's keys.

    See the module docstring for shapes, dtypes and units.
    """

    name: str
    mean_shape: np.ndarray
    id_basis: np.ndarray
    exp_basis: np.ndarray
    expression_names: list[str]
    expression_range: np.ndarray
    albedo_space: str
    albedo_mean: np.ndarray
    albedo_basis: np.ndarray
    triangles: np.ndarray
    uv_coords: np.ndarray
    uv_triangles: np.ndarray
    landmark_indices: np.ndarray
    skin_mask: np.ndarray
    face_region: np.ndarray
    metadata: dict = field(default_factory=dict)
    units: str = "metre"
    polygons: np.ndarray | None = None
    uv_polygons: np.ndarray | None = None
    source_index: np.ndarray | None = None
    interior_mean_shape: np.ndarray | None = None
    interior_id_basis: np.ndarray | None = None
    interior_exp_basis: np.ndarray | None = None
    interior_polygons: np.ndarray | None = None
    interior_part: np.ndarray | None = None
    interior_part_names: list[str] | None = None

    @property
    def has_interior(self) -> bool:
        return self.interior_mean_shape is not None
    dense_landmark_vertices: np.ndarray | None = None
    dense_landmark_weights: np.ndarray | None = None

    @property
    def n_vertices(self) -> int:
        return int(self.mean_shape.shape[0])

    @property
    def n_triangles(self) -> int:
        return int(self.triangles.shape[0])

    @property
    def n_id(self) -> int:
        return int(self.id_basis.shape[0])

    @property
    def n_exp(self) -> int:
        return int(self.exp_basis.shape[0])

    @property
    def n_tex(self) -> int:
        return int(self.albedo_basis.shape[0])

    def validate(self, source: str = "<memory>") -> None:
        """Check every array's shape, dtype and index range.

        Raises:
            ModelFileError: naming ``source`` and the first inconsistent key.
        """

        def fail(msg: str) -> None:
            raise ModelFileError(f"face model {source}: {msg}")

        v = self.mean_shape.shape[0] if self.mean_shape.ndim == 2 else -1
        if self.mean_shape.ndim != 2 or self.mean_shape.shape[1] != 3 or v < 3:
            fail(f"mean_shape must be (V, 3), got {self.mean_shape.shape}")
        for key in ("id_basis", "exp_basis"):
            arr = getattr(self, key)
            if arr.ndim != 3 or arr.shape[1:] != (v, 3):
                fail(f"{key} must be (K, {v}, 3), got {arr.shape}")
        if len(self.expression_names) != self.n_exp:
            fail(f"{self.n_exp} expression basis vectors but {len(self.expression_names)} expression_names")
        if len(set(self.expression_names)) != len(self.expression_names):
            fail("expression_names are not unique")
        if self.expression_range.shape != (self.n_exp, 2):
            fail(f"expression_range must be ({self.n_exp}, 2), got {self.expression_range.shape}")
        if np.any(self.expression_range[:, 0] >= self.expression_range[:, 1]):
            fail("expression_range has a min >= max")
        if self.albedo_space == "vertex":
            if self.albedo_mean.shape != (v, 3):
                fail(f"albedo_mean must be ({v}, 3) for vertex albedo, got {self.albedo_mean.shape}")
        elif self.albedo_space == "uv":
            if self.albedo_mean.ndim != 3 or self.albedo_mean.shape[2] != 3:
                fail(f"albedo_mean must be (H, W, 3) for UV albedo, got {self.albedo_mean.shape}")
        else:
            fail(f"albedo_space must be 'vertex' or 'uv', got {self.albedo_space!r}")
        if self.albedo_basis.shape[1:] != self.albedo_mean.shape:
            fail(f"albedo_basis must be (K, *{self.albedo_mean.shape}), got {self.albedo_basis.shape}")
        for key in ("triangles", "uv_triangles", "landmark_indices"):
            dtype = np.asarray(getattr(self, key)).dtype
            if not np.issubdtype(dtype, np.integer):
                fail(f"{key} must hold integer indices, got dtype {dtype}")
        f = self.triangles.shape[0] if self.triangles.ndim == 2 else -1
        if self.triangles.ndim != 2 or self.triangles.shape[1] != 3 or f < 1:
            fail(f"triangles must be (F, 3), got {self.triangles.shape}")
        if self.triangles.min() < 0 or self.triangles.max() >= v:
            fail(f"triangles index outside [0, {v}): range {self.triangles.min()}..{self.triangles.max()}")
        if self.uv_coords.ndim != 2 or self.uv_coords.shape[1] != 2:
            fail(f"uv_coords must be (T, 2), got {self.uv_coords.shape}")
        if self.uv_triangles.shape != (f, 3):
            fail(f"uv_triangles must be ({f}, 3) like triangles, got {self.uv_triangles.shape}")
        t = self.uv_coords.shape[0]
        if self.uv_triangles.min() < 0 or self.uv_triangles.max() >= t:
            fail(f"uv_triangles index outside [0, {t})")
        if self.landmark_indices.shape != (N_LANDMARKS,):
            fail(f"landmark_indices must be ({N_LANDMARKS},), got {self.landmark_indices.shape}")
        if self.landmark_indices.min() < 0 or self.landmark_indices.max() >= v:
            fail(f"landmark_indices outside [0, {v})")
        if self.skin_mask.shape != (v,):
            fail(f"skin_mask must be ({v},), got {self.skin_mask.shape}")
        if self.face_region.shape != (v,):
            fail(f"face_region must be ({v},), got {self.face_region.shape}")
        dv, dw = self.dense_landmark_vertices, self.dense_landmark_weights
        if (dv is None) != (dw is None):
            fail("dense_landmark_vertices and dense_landmark_weights must be given together")
        if dv is not None:
            shape = (N_DENSE_LANDMARKS, 3)
            if dv.shape != shape or dw.shape != shape:
                fail(f"dense_landmark_vertices/weights must be {shape}, got {dv.shape} and {dw.shape}")
            if dv.min() < 0 or dv.max() >= v:
                fail(f"dense_landmark_vertices outside [0, {v}): range {dv.min()}..{dv.max()}")
            if not np.allclose(dw.sum(axis=1), 1.0, atol=1e-4) or dw.min() < -1e-6:
                fail(f"dense_landmark_weights rows must be non-negative and sum to 1, got sums "
                     f"{dw.sum(axis=1).min():.5f}..{dw.sum(axis=1).max():.5f}")
        if self.units != "metre":
            fail(f"units must be 'metre', got {self.units!r}")
        for key in ("mean_shape", "id_basis", "exp_basis", "albedo_mean", "albedo_basis", "uv_coords"):
            if not np.all(np.isfinite(getattr(self, key))):
                fail(f"{key} holds NaN or infinite values")
        self._validate_optional(fail, v, t)

    def _validate_optional(self, fail, v: int, t: int) -> None:
        def polys_ok(key: str, polys: np.ndarray, n: int) -> None:
            if polys.ndim != 2 or polys.shape[1] != 4 or len(polys) < 1:
                fail(f"{key} must be (P, 4), got {polys.shape}")
            if polys[:, :3].min() < 0 or polys.max() >= n or np.any(polys[:, 3] < -1):
                fail(f"{key} index outside [0, {n}) (or a corner other than the 4th is -1): "
                     f"range {polys.min()}..{polys.max()}")

        if (self.polygons is None) != (self.uv_polygons is None):
            fail("polygons and uv_polygons come together")
        if self.polygons is not None:
            polys_ok("polygons", self.polygons, v)
            polys_ok("uv_polygons", self.uv_polygons, t)
            if self.uv_polygons.shape != self.polygons.shape or not np.array_equal(
                    self.uv_polygons[:, 3] < 0, self.polygons[:, 3] < 0):
                fail(f"uv_polygons {self.uv_polygons.shape} must match polygons {self.polygons.shape} "
                     "corner for corner")
            tris, _ = triangulate_polygons(self.polygons)
            uv_tris, _ = triangulate_polygons(self.uv_polygons)
            if not (np.array_equal(tris, self.triangles) and np.array_equal(uv_tris, self.uv_triangles)):
                fail(f"triangles ({len(self.triangles)}) are not triangulate_polygons(polygons) ({len(tris)})")
        if self.source_index is not None and self.source_index.shape != (v,):
            fail(f"source_index must be ({v},), got {self.source_index.shape}")
        keys = ("interior_mean_shape", "interior_id_basis", "interior_exp_basis", "interior_polygons",
                "interior_part", "interior_part_names")
        present = [getattr(self, k) is not None for k in keys]
        if any(present) and not all(present):
            fail(f"interior keys come together; missing {[k for k, p in zip(keys, present) if not p]}")
        if not any(present):
            return
        vi = self.interior_mean_shape.shape[0] if self.interior_mean_shape.ndim == 2 else -1
        if self.interior_mean_shape.shape != (vi, 3) or vi < 3:
            fail(f"interior_mean_shape must be (Vi, 3), got {self.interior_mean_shape.shape}")
        if self.interior_id_basis.shape != (self.n_id, vi, 3):
            fail(f"interior_id_basis must be ({self.n_id}, {vi}, 3), got {self.interior_id_basis.shape}")
        if self.interior_exp_basis.shape != (self.n_exp, vi, 3):
            fail(f"interior_exp_basis must be ({self.n_exp}, {vi}, 3), got {self.interior_exp_basis.shape}")
        polys_ok("interior_polygons", self.interior_polygons, vi)
        n_parts = len(self.interior_part_names)
        if self.interior_part.shape != (len(self.interior_polygons),) or self.interior_part.min() < 0 \
                or self.interior_part.max() >= n_parts:
            fail(f"interior_part must be ({len(self.interior_polygons)},) in [0, {n_parts}), "
                 f"got {self.interior_part.shape}")
        for key in ("interior_mean_shape", "interior_id_basis", "interior_exp_basis"):
            if not np.all(np.isfinite(getattr(self, key))):
                fail(f"{key} holds NaN or infinite values")


_ARRAY_KEYS = (
    "mean_shape", "id_basis", "exp_basis", "expression_range", "albedo_mean", "albedo_basis",
    "triangles", "uv_coords", "uv_triangles", "landmark_indices", "skin_mask", "face_region",
)
_OPTIONAL_KEYS = (
    "polygons", "uv_polygons", "source_index", "interior_mean_shape", "interior_id_basis", "interior_exp_basis",
    "interior_polygons", "interior_part", "dense_landmark_vertices", "dense_landmark_weights",
)
_DTYPES = {
    "triangles": np.int32, "uv_triangles": np.int32, "landmark_indices": np.int32,
    "face_region": np.bool_, "polygons": np.int32, "uv_polygons": np.int32, "source_index": np.int32,
    "interior_polygons": np.int32, "interior_part": np.int32, "dense_landmark_vertices": np.int32,
}


def save_face_model_data(data: FaceModelData, path: str | Path, compress: bool = True) -> Path:
    """Validate ``data`` and write it as a container ``.npz`` at ``path``.

    The write is deterministic (fixed array order, no timestamps inside the arrays),
    so rebuilding a model from the same inputs gives identical array contents.

    Returns:
        The path written.
    """
    data.validate()
    path = Path(path)
    arrays = {
        "format": np.array(FORMAT),
        "version": np.array(VERSION),
        "name": np.array(data.name),
        "units": np.array(data.units),
        "albedo_space": np.array(data.albedo_space),
        "expression_names": np.array(list(data.expression_names)),
        "metadata": np.array(json.dumps(data.metadata, sort_keys=True)),
    }
    for key in _ARRAY_KEYS + _OPTIONAL_KEYS:
        if getattr(data, key) is not None:
            arrays[key] = np.ascontiguousarray(getattr(data, key), dtype=_DTYPES.get(key, np.float32))
    if data.interior_part_names is not None:
        arrays["interior_part_names"] = np.array(list(data.interior_part_names))
    (np.savez_compressed if compress else np.savez)(path, **arrays)
    return path


def load_face_model_data(path: str | Path) -> FaceModelData:
    """Read and validate a container ``.npz``.

    Raises:
        ModelFileError: the file is missing, not an ``.npz``, truncated, of another
            format or version, lacks a key, or holds inconsistent arrays.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"face model file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            raw = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ModelFileError(f"face model {path}: not a readable .npz archive ({exc})") from exc
    fmt = str(raw.get("format", ""))
    if fmt != FORMAT:
        raise ModelFileError(f"face model {path}: format is {fmt!r}, expected {FORMAT!r}")
    version = int(raw.get("version", -1))
    if version != VERSION:
        raise ModelFileError(f"face model {path}: container version {version}, this engine reads {VERSION}")
    required = set(_ARRAY_KEYS) | {"name", "units", "albedo_space", "expression_names", "metadata"}
    missing = sorted(required - raw.keys())
    if missing:
        raise ModelFileError(f"face model {path}: missing keys {missing}")
    try:
        metadata = json.loads(str(raw["metadata"]))
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"face model {path}: metadata is not JSON ({exc})") from exc
    data = FaceModelData(
        name=str(raw["name"]),
        units=str(raw["units"]),
        albedo_space=str(raw["albedo_space"]),
        expression_names=[str(s) for s in raw["expression_names"]],
        metadata=metadata,
        interior_part_names=([str(s) for s in raw["interior_part_names"]] if "interior_part_names" in raw else None),
        **{k: raw[k] for k in _ARRAY_KEYS},
        **{k: raw[k] for k in _OPTIONAL_KEYS if k in raw},
    )
    data.validate(str(path))
    log.debug("loaded face model %s: %d vertices, %d triangles, id/exp/tex = %d/%d/%d",
              data.name, data.n_vertices, data.n_triangles, data.n_id, data.n_exp, data.n_tex)
    return data
