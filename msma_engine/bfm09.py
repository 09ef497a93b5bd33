"""Convert the Basel Face Model 2009 + FaceWarehouse expressions into the container.

The Basel Face Model 2009 (``01_MorphableModel.mat``, non-commercial licence) and
Guo et al.'s FaceWarehouse expression basis (``Exp_Pca.bin``, research only) are
not redistributable, so each user converts their own copies. The recipe is
Deep3DFaceRecon's (``util/load_mats.py``, ``transferBFM09``; ``models/bfm.py``)
with units changed from its decimetres to metres:

* identity: ``shapePC[:, k] * shapeEV[k]`` for the first 80 components, so the
  coefficients are ~ N(0, 1). BFM09 stores micrometres: metres = native × 1e-6
  (Deep3DFaceRecon divides by 1e5 to get decimetres);
* expression: ``Exp_Pca.bin`` holds an int32 component count K, a float32 mean
  (3 × 53,215 values, discarded) and K float32 components of 3 × 53,215 values
  each, one component after the other, xyz interleaved per vertex. Each
  component is scaled by ``std_exp.txt[k]`` and × 1e-6; the first 64 are kept;
* albedo: ``texPC[:, k] * texEV[k]`` for the first 80 components and ``texMU``,
  divided by 255 into [0, 1];
* the 35,709 "front" vertices: ``BFM_front_idx.mat['idx']`` indexes the
  53,215-vertex expression topology; ``BFM_exp_idx.mat['trimIndex']`` maps that
  topology into the 53,490 BFM09 vertices. Expression rows use ``idx`` directly;
  shape and texture rows use ``trimIndex[idx]`` (both 1-based in the files);
* triangles (70,789), the 68 keypoints and the skin mask from
  ``facemodel_info.mat`` (1-based -> 0-based);
* the mean shape is recentred on its vertex mean (Deep3DFaceRecon's
  ``recenter=True``), so its coefficient files import unchanged apart from the
  translation (× 0.1, decimetres -> metres).

Container choices this module makes (also written into the file's metadata):

* ``face_region`` = the vertices of ``frontmask2_idx`` (27,660 of 35,709), the
  inner face region Deep3DFaceRecon computes its photometric error on;
* ``skin_mask`` = ``skinmask`` (the region of its skin-albedo regulariser);
* ``expression_range`` = [-3, 3] for every expression: with the basis scaled by
  its standard deviation the coefficients are ~ N(0, 1) (Deep3DFaceRecon puts the
  same L2 prior on them as on identity), so ±3 covers 99.7 % of the model;
* UVs: BFM09 has none. A cylindrical projection of the recentred mean shape
  about a vertical (y) axis fitted to the face's curvature: u = arc length around
  the axis (+u towards the subject's left, i.e. image right seen from the front),
  v = height (+y up), both in one scale so texels stay square, fitted into
  [0.02, 0.98]². The front face never reaches the back of the cylinder, so the
  map has no seam; ``uv_triangles`` = ``triangles``;
* triangle winding is checked on the mean shape (area-weighted normals must face
  +z, out of the face) and flipped if the files have it the other way.

``BFM_model_front.mat`` (Deep3DFaceRecon's own output: ``meanshape``,
``idBase``, ``exBase``, ``meantex``, ``texBase``, ``tri``, ``keypoints``,
``frontmask2_idx``, ``skinmask``; decimetres, texture 0-255) converts to the
same container through :func:`convert_front_mat`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from msma_engine.errors import ModelFileError
from msma_engine.fileio import atomic_output
from msma_engine.matfile import read_mat_arrays
from msma_engine.model_file import FaceModelData, save_face_model_data

__all__ = [
    "BFM09_N_VERTICES", "EXP_N_VERTICES", "FRONT_N_VERTICES", "FRONT_N_TRIANGLES",
    "N_ID", "N_EXP", "N_TEX", "BFM_FOLDER_FILES",
    "check_bfm_folder", "read_exp_pca", "convert_bfm09", "convert_front_mat",
    "check_output_path", "write_face_model",
]

log = logging.getLogger(__name__)

BFM09_N_VERTICES = 53490      # vertices of 01_MorphableModel.mat
EXP_N_VERTICES = 53215        # vertices of Exp_Pca.bin (BFM09 without its neck/ear trims)
FRONT_N_VERTICES = 35709      # Deep3DFaceRecon's cropped front face
FRONT_N_TRIANGLES = 70789
N_ID, N_EXP, N_TEX = 80, 64, 80
MICROMETRE = 1e-6             # BFM09 native unit -> metres
DECIMETRE = 0.1               # Deep3DFaceRecon's unit -> metres
EXPRESSION_SIGMAS = 3.0
UV_MARGIN = 0.02
FACE_WIDTH_M = (0.05, 0.5)    # plausible ear-to-ear width of the mean face; catches unit mix-ups

#: Files a Deep3DFaceRecon ``BFM/`` folder must hold for :func:`convert_bfm09`.
BFM_FOLDER_FILES = ("BFM_front_idx.mat", "BFM_exp_idx.mat", "facemodel_info.mat", "std_exp.txt")

_LICENCE_NOTE = (
    "Derived from the user's own copies of the Basel Face Model 2009 (University of Basel; "
    "registration, non-commercial use only) and Exp_Pca.bin (Guo et al., from FaceWarehouse; "
    "research use only), with index files from Deep3DFaceRecon (MIT). Do not redistribute.")


def check_bfm_folder(folder: str | Path) -> dict[str, Path]:
    """Check that ``folder`` holds Deep3DFaceRecon's ``BFM/`` index files.

    Args:
        folder: the folder (Deep3DFaceRecon's ``BFM/`` layout).

    Returns:
        File name -> path for each of :data:`BFM_FOLDER_FILES`.

    Raises:
        ModelFileError: the folder does not exist, or lacks files (all are listed).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFileError(f"BFM folder not found: {folder}")
    paths = {name: folder / name for name in BFM_FOLDER_FILES}
    missing = [name for name, p in paths.items() if not p.is_file()]
    if missing:
        raise ModelFileError(
            f"BFM folder {folder} lacks {missing} (expected Deep3DFaceRecon's BFM/ folder with "
            f"{list(BFM_FOLDER_FILES)})")
    return paths


def _exp_pca_layout(path: Path, n_vertices: int) -> int:
    """Check ``Exp_Pca.bin``'s size against its header; return the component count."""
    if not path.is_file():
        raise ModelFileError(f"file not found: {path}")
    size = path.stat().st_size
    if size < 4:
        raise ModelFileError(f"{path}: truncated Exp_Pca.bin, {size} bytes, not even the 4-byte header")
    n_comp = int(np.fromfile(path, dtype="<i4", count=1)[0])
    if not 0 < n_comp < 10_000:
        raise ModelFileError(f"{path}: not an Exp_Pca.bin (header says {n_comp} components)")
    expected = 4 + 4 * 3 * n_vertices * (1 + n_comp)
    if size != expected:
        kind = "truncated" if size < expected else "too long for"
        raise ModelFileError(
            f"{path}: {kind} Exp_Pca.bin: expected {expected} bytes (int32 count {n_comp}, float32 mean "
            f"and {n_comp} components of 3x{n_vertices} values), got {size}")
    return n_comp


def read_exp_pca(path: str | Path, n_keep: int | None = None,
                 n_vertices: int = EXP_N_VERTICES) -> tuple[np.ndarray, np.ndarray]:
    """Read Guo et al.'s ``Exp_Pca.bin``.

    Layout (little-endian): int32 K; float32 mean ``(3·n_vertices,)``; float32
    components ``(K, 3·n_vertices)``, component-major, xyz interleaved per vertex.

    Args:
        path: the ``.bin`` file.
        n_keep: read only the first ``n_keep`` components (all when ``None``).
        n_vertices: vertices per component (53,215 for the original file).

    Returns:
        ``(mean (3·n_vertices,), components (n_keep, 3·n_vertices))``, float32, in
        the file's micrometres; the component count in the file is
        ``components.shape[0]`` when ``n_keep`` is ``None``.

    Raises:
        ModelFileError: missing file, bad header, size differing from the header's
            promise (expected and actual byte counts), or fewer than ``n_keep``
            components.
    """
    path = Path(path)
    n_comp = _exp_pca_layout(path, n_vertices)
    n_keep = n_comp if n_keep is None else n_keep
    if n_comp < n_keep:
        raise ModelFileError(f"{path}: Exp_Pca.bin has {n_comp} expression components, need at least {n_keep}")
    stride = 3 * n_vertices
    mean = np.fromfile(path, dtype="<f4", count=stride, offset=4)
    comps = np.fromfile(path, dtype="<f4", count=stride * n_keep, offset=4 + 4 * stride)
    return mean, comps.reshape(n_keep, stride)


def _read_std_exp(path: Path) -> np.ndarray:
    try:
        std = np.loadtxt(path, dtype=np.float64).ravel()
    except ValueError as exc:
        raise ModelFileError(f"{path}: not a list of numbers ({exc})") from exc
    if not np.all(np.isfinite(std)) or np.any(std <= 0):
        raise ModelFileError(f"{path}: standard deviations must be finite and > 0")
    return std


def _one_based_index(path: Path, key: str, arr: np.ndarray, upper: int) -> np.ndarray:
    """MATLAB 1-based indices (any float/int dtype) -> 0-based int64, checked in [1, upper]."""
    idx = np.asarray(arr, dtype=np.float64).ravel()
    if idx.size == 0 or np.any(idx != np.round(idx)) or idx.min() < 1 or idx.max() > upper:
        raise ModelFileError(f"{path}: '{key}' must hold 1-based indices in [1, {upper}], "
                             f"got range {idx.min() if idx.size else '-'}..{idx.max() if idx.size else '-'}")
    return idx.astype(np.int64) - 1


def _read_face_info(path: Path, n_vertices: int) -> dict[str, np.ndarray]:
    """Triangles, keypoints, skin mask and face region from ``facemodel_info.mat``-style keys."""
    info = read_mat_arrays(path, {"tri": (None, 3), "keypoints": None, "skinmask": None,
                                  "frontmask2_idx": None})
    out = {
        "triangles": _one_based_index(path, "tri", info["tri"], n_vertices).reshape(-1, 3),
        "keypoints": _one_based_index(path, "keypoints", info["keypoints"], n_vertices),
        "region": _one_based_index(path, "frontmask2_idx", info["frontmask2_idx"], n_vertices),
    }
    if out["keypoints"].shape != (68,):
        raise ModelFileError(f"{path}: 'keypoints' has {info['keypoints'].size} entries, expected 68")
    skin = np.asarray(info["skinmask"], dtype=np.float32).ravel()
    if skin.shape != (n_vertices,):
        raise ModelFileError(f"{path}: 'skinmask' has shape {info['skinmask'].shape}, expected (1, {n_vertices})")
    out["skin"] = skin
    return out


def _vector(path: Path, key: str, arr: np.ndarray, min_len: int) -> np.ndarray:
    """A ``(K, 1)`` / ``(1, K)`` / ``(K,)`` array as a float64 vector of length >= ``min_len``."""
    if arr.ndim > 2 or (arr.ndim == 2 and 1 not in arr.shape) or arr.size < min_len:
        raise ModelFileError(f"{path}: '{key}' has shape {arr.shape}, expected a vector of >= {min_len} values")
    return np.asarray(arr, dtype=np.float64).ravel()


def _scaled_basis(pc: np.ndarray, scale: np.ndarray, rows: np.ndarray, factor: float) -> np.ndarray:
    """``pc[3·rows + c, k] · scale[k] · factor`` as ``(K, len(rows), 3)`` float32.

    Args:
        pc: ``(3·N, ≥K)`` columns are components, rows xyz-interleaved per vertex.
        scale: ``(K,)`` per-component scale (standard deviations).
        rows: ``(V,)`` 0-based vertex indices into the N vertices.
        factor: unit conversion.
    """
    k = scale.shape[0]
    per_vertex = pc.reshape(-1, 3, pc.shape[1])[rows, :, :k]           # (V, 3, K)
    basis = per_vertex.astype(np.float64) * (scale * factor)          # std-scaled, in target units
    return np.ascontiguousarray(basis.transpose(2, 0, 1), dtype=np.float32)


def convert_bfm09(morphable_model: str | Path, exp_pca: str | Path, bfm_folder: str | Path) -> FaceModelData:
    """Convert BFM09 + ``Exp_Pca.bin`` into the container with Deep3DFaceRecon's recipe.

    Args:
        morphable_model: ``01_MorphableModel.mat`` (MAT v5) with ``shapeMU (160470, 1)``,
            ``shapePC (160470, K)``, ``shapeEV (K, 1)``, ``texMU``, ``texPC``, ``texEV``
            alike; any K >= 80 (the original has 199; the first 80 are kept).
        exp_pca: ``Exp_Pca.bin`` (>= 64 components; the original has 79).
        bfm_folder: a folder with :data:`BFM_FOLDER_FILES` (Deep3DFaceRecon's ``BFM/``).

    Returns:
        The model (35,709 vertices, 70,789 triangles, 80/64/80 components), metres,
        albedo per vertex in [0, 1].

    Raises:
        ModelFileError: any file missing, truncated or of the wrong layout; the
            message names the file, the key and the expected and actual shapes.
    """
    morphable_model, exp_pca = Path(morphable_model), Path(exp_pca)
    for p in (morphable_model, exp_pca):
        if not p.is_file():
            raise ModelFileError(f"file not found: {p}")
    files = check_bfm_folder(bfm_folder)
    n_exp_file = _exp_pca_layout(exp_pca, EXP_N_VERTICES)  # cheap size check before the big read
    std_exp = _read_std_exp(files["std_exp.txt"])
    if std_exp.shape[0] != n_exp_file:
        raise ModelFileError(f"{files['std_exp.txt']} holds {std_exp.shape[0]} values but {exp_pca} has "
                             f"{n_exp_file} expression components")
    if n_exp_file < N_EXP:
        raise ModelFileError(f"{exp_pca}: Exp_Pca.bin has {n_exp_file} expression components, need at least {N_EXP}")

    # Deep3DFaceRecon names these the other way round: its ``index_exp`` is BFM_front_idx.
    front_path, trim_path = files["BFM_front_idx.mat"], files["BFM_exp_idx.mat"]
    front_in_exp = _one_based_index(front_path, "idx",
                                    read_mat_arrays(front_path, {"idx": (FRONT_N_VERTICES, 1)})["idx"],
                                    EXP_N_VERTICES)
    trim = _one_based_index(trim_path, "trimIndex",
                            read_mat_arrays(trim_path, {"trimIndex": (EXP_N_VERTICES, 1)})["trimIndex"],
                            BFM09_N_VERTICES)
    front_in_bfm = trim[front_in_exp]
    info = _read_face_info(files["facemodel_info.mat"], FRONT_N_VERTICES)

    n3 = 3 * BFM09_N_VERTICES
    bfm = read_mat_arrays(morphable_model, {
        "shapeMU": (n3, 1), "shapePC": (n3, None), "shapeEV": None,
        "texMU": (n3, 1), "texPC": (n3, None), "texEV": None,
    })
    for pc_key, ev_key, n_keep in (("shapePC", "shapeEV", N_ID), ("texPC", "texEV", N_TEX)):
        n_cols = bfm[pc_key].shape[1]
        if n_cols < n_keep:
            raise ModelFileError(f"{morphable_model}: '{pc_key}' has shape {bfm[pc_key].shape}, "
                                 f"expected ({n3}, >= {n_keep})")
        ev = _vector(morphable_model, ev_key, bfm[ev_key], n_keep)
        if ev.shape[0] != n_cols:
            raise ModelFileError(f"{morphable_model}: '{ev_key}' has {ev.shape[0]} values but '{pc_key}' has "
                                 f"{n_cols} columns")
        bfm[ev_key] = ev[:n_keep]

    id_basis = _scaled_basis(bfm["shapePC"], bfm["shapeEV"], front_in_bfm, MICROMETRE)
    albedo_basis = _scaled_basis(bfm["texPC"], bfm["texEV"], front_in_bfm, 1.0 / 255.0)
    mean_shape = bfm["shapeMU"].reshape(-1, 3)[front_in_bfm].astype(np.float64) * MICROMETRE
    albedo_mean = bfm["texMU"].reshape(-1, 3)[front_in_bfm].astype(np.float64) / 255.0
    n_shape_src, n_tex_src = bfm["shapePC"].shape[1], bfm["texPC"].shape[1]
    del bfm

    _, exp_pc = read_exp_pca(exp_pca, N_EXP)                                   # (64, 3·53215)
    exp_basis = _scaled_basis(exp_pc.T, std_exp[:N_EXP], front_in_exp, MICROMETRE)

    source = {
        "source": "Basel Face Model 2009 + FaceWarehouse expressions (Guo et al.)",
        "converted_from": [morphable_model.name, exp_pca.name, Path(bfm_folder).name + "/"],
        "components_in_source": {"id": n_shape_src, "exp": n_exp_file, "tex": n_tex_src},
    }
    return _assemble(mean_shape, id_basis, exp_basis, albedo_mean, albedo_basis, info, source)


def convert_front_mat(front_mat: str | Path) -> FaceModelData:
    """Convert Deep3DFaceRecon's ``BFM_model_front.mat`` into the container.

    Args:
        front_mat: MAT v5 file with ``meanshape (1, 3N)``, ``idBase (3N, >=80)``,
            ``exBase (3N, >=64)``, ``meantex (1, 3N)``, ``texBase (3N, >=80)``,
            ``tri (F, 3)``, ``keypoints (1, 68)``, ``frontmask2_idx``, ``skinmask (1, N)``
            in decimetres and 0-255 colour (N = 35,709 in Deep3DFaceRecon's file).

    Returns:
        The same container as :func:`convert_bfm09` gives for the same source files.

    Raises:
        ModelFileError: missing, truncated or wrong-layout file (key and shapes named).
    """
    path = Path(front_mat)
    arrays = read_mat_arrays(path, {"meanshape": None, "idBase": (None, None), "exBase": (None, None),
                                    "meantex": None, "texBase": (None, None)})
    mean = arrays["meanshape"]
    if mean.ndim != 2 or 1 not in mean.shape or mean.size % 3 or mean.size < 9:
        raise ModelFileError(f"{path}: 'meanshape' has shape {mean.shape}, expected (1, 3N)")
    n3 = mean.size
    tex = arrays["meantex"]
    if tex.ndim != 2 or 1 not in tex.shape or tex.size != n3:
        raise ModelFileError(f"{path}: 'meantex' has shape {tex.shape}, expected (1, {n3}) like 'meanshape'")
    bases = {}
    for key, n_keep in (("idBase", N_ID), ("exBase", N_EXP), ("texBase", N_TEX)):
        arr = arrays[key]
        if arr.shape[0] != n3 or arr.shape[1] < n_keep:
            raise ModelFileError(f"{path}: '{key}' has shape {arr.shape}, expected ({n3}, >= {n_keep})")
        per_vertex = arr[:, :n_keep].astype(np.float64).reshape(-1, 3, n_keep)
        factor = 1.0 / 255.0 if key == "texBase" else DECIMETRE
        bases[key] = np.ascontiguousarray((per_vertex * factor).transpose(2, 0, 1), dtype=np.float32)
    info = _read_face_info(path, n3 // 3)
    source = {
        "source": "Deep3DFaceRecon BFM_model_front.mat (Basel Face Model 2009 + FaceWarehouse expressions)",
        "converted_from": [path.name],
    }
    return _assemble(mean.astype(np.float64).reshape(-1, 3) * DECIMETRE, bases["idBase"], bases["exBase"],
                     arrays["meantex"].astype(np.float64).reshape(-1, 3) / 255.0, bases["texBase"], info, source)


def _face_normal_sum(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Sum of area-weighted face normals (right-hand rule on the index order), ``(3,)``."""
    v0, v1, v2 = (vertices[triangles[:, i]] for i in range(3))
    return np.cross(v1 - v0, v2 - v0).sum(axis=0)


def _cylindrical_uv(vertices: np.ndarray) -> np.ndarray:
    """Seamless UVs for a face looking down +z: cylinder about a vertical axis, ``(V, 2)`` in [0, 1].

    The axis is the circle fitted (algebraic least squares) to the vertices' (x, z);
    u is the arc length around it, v the height, one scale for both.
    """
    x, y, z = vertices[:, 0], vertices[:, 1], vertices[:, 2]
    a = np.stack([2 * x, 2 * z, np.ones_like(x)], axis=1)
    (cx, cz, _), *_ = np.linalg.lstsq(a, x * x + z * z, rcond=None)
    width = x.max() - x.min()
    if not (np.isfinite(cx) and np.isfinite(cz)):
        cx, cz = x.mean(), -np.inf
    # The axis must lie behind every vertex: then all angles are within ±90° and the map has no
    # seam. (For a flat or inward-curved surface this gives a near-planar projection.)
    cz = min(cz, z.min() - 0.1 * width)
    if not np.isfinite(cz):
        cz = z.min() - 2.0 * width
    radius = np.median(np.hypot(x - cx, z - cz))
    arc = radius * np.arctan2(x - cx, z - cz)
    uv = np.stack([arc, y], axis=1)
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    scale = (1.0 - 2.0 * UV_MARGIN) / float((hi - lo).max())
    return ((uv - (lo + hi) / 2) * scale + 0.5).astype(np.float32)


def _assemble(mean_shape: np.ndarray, id_basis: np.ndarray, exp_basis: np.ndarray, albedo_mean: np.ndarray,
              albedo_basis: np.ndarray, info: dict[str, np.ndarray], source: dict) -> FaceModelData:
    """Recentre, orient, add UVs and metadata; shared by both converters.

    Args:
        mean_shape: ``(V, 3)`` metres, not yet recentred.
        id_basis, exp_basis: ``(K, V, 3)`` metres per unit coefficient.
        albedo_mean: ``(V, 3)`` in [0, 1]; albedo_basis ``(K, V, 3)``.
        info: 0-based ``triangles``, ``keypoints``, ``region`` and the ``skin`` mask.
        source: provenance for the metadata.
    """
    width = float(mean_shape[:, 0].max() - mean_shape[:, 0].min())
    if not FACE_WIDTH_M[0] <= width <= FACE_WIDTH_M[1]:
        raise ModelFileError(
            f"{source['converted_from'][0]}: the mean face is {width:.4g} m wide after unit conversion, expected "
            f"{FACE_WIDTH_M[0]}-{FACE_WIDTH_M[1]} m; is it in BFM09's micrometres (or decimetres for "
            f"BFM_model_front.mat)?")
    centre = mean_shape.mean(axis=0)
    mean_shape = (mean_shape - centre).astype(np.float32)
    triangles = info["triangles"].astype(np.int32)
    normal_sum = _face_normal_sum(mean_shape.astype(np.float64), triangles)
    flipped = bool(normal_sum[2] < 0)
    if flipped:
        triangles = np.ascontiguousarray(triangles[:, [0, 2, 1]])
    uv = _cylindrical_uv(mean_shape.astype(np.float64))
    t0, t1, t2 = (uv[triangles[:, i]] for i in range(3))
    uv_area = (t1[:, 0] - t0[:, 0]) * (t2[:, 1] - t0[:, 1]) - (t1[:, 1] - t0[:, 1]) * (t2[:, 0] - t0[:, 0])
    n_uv_folded = int((uv_area <= 0).sum())
    v = mean_shape.shape[0]
    face_region = np.zeros(v, dtype=bool)
    face_region[info["region"]] = True
    n_exp = exp_basis.shape[0]
    metadata = {
        **source,
        "licence": _LICENCE_NOTE,
        "recipe": ("Deep3DFaceRecon transferBFM09: bases x their standard deviations (80 id, 64 exp, 80 tex), "
                   "35,709 front vertices via BFM_front_idx/BFM_exp_idx, triangles/keypoints/skinmask from "
                   "facemodel_info.mat, mean shape recentred; units micrometres x 1e-6 (or decimetres x 0.1) "
                   "-> metres, texture / 255"),
        "recenter_offset_m": [float(c) for c in centre],
        "winding_flipped": flipped,
        "uv_method": "cylindrical projection about a vertical axis fitted to the mean shape; no seam",
        "uv_folded_triangles": n_uv_folded,
        "face_region": "frontmask2_idx (Deep3DFaceRecon's photometric-loss region)",
        "skin_mask": "skinmask (Deep3DFaceRecon's skin-albedo regulariser region)",
        "expression_range": f"+-{EXPRESSION_SIGMAS:g} standard deviations (coefficients ~ N(0, 1))",
        "coefficient_layout": "id 80 | exp 64 | tex 80 | angles 3 | gamma 27 | trans 3 (Deep3DFaceRecon)",
    }
    log.info("BFM09 converted: %d vertices, %d triangles (winding flipped: %s), %d folded UV triangles",
             v, triangles.shape[0], flipped, n_uv_folded)
    data = FaceModelData(
        name="bfm09",
        mean_shape=mean_shape,
        id_basis=id_basis,
        exp_basis=exp_basis,
        expression_names=[f"exp_{k:02d}" for k in range(n_exp)],
        expression_range=np.tile(np.array([[-EXPRESSION_SIGMAS, EXPRESSION_SIGMAS]], np.float32), (n_exp, 1)),
        albedo_space="vertex",
        albedo_mean=albedo_mean.astype(np.float32),
        albedo_basis=albedo_basis,
        triangles=triangles,
        uv_coords=uv,
        uv_triangles=triangles.copy(),
        landmark_indices=info["keypoints"].astype(np.int32),
        skin_mask=info["skin"],
        face_region=face_region,
        metadata=json.loads(json.dumps(metadata)),
    )
    data.validate("converted BFM09")
    return data


def check_output_path(output: str | Path, force: bool = False) -> Path:
    """Check that the container can be written at ``output``.

    Args:
        output: the ``.npz`` path to write.
        force: allow replacing an existing file.

    Returns:
        ``output`` as a :class:`Path`.

    Raises:
        ModelFileError: the name does not end in ``.npz``, its folder is missing, or
            the file exists and ``force`` is false.
    """
    output = Path(output)
    if output.suffix != ".npz":
        raise ModelFileError(f"output must be a .npz file, got {output}")
    if not output.parent.is_dir():
        raise ModelFileError(f"output folder does not exist: {output.parent}")
    if output.exists() and not force:
        raise ModelFileError(f"output exists: {output} (pass --force to overwrite)")
    return output


def write_face_model(data: FaceModelData, output: str | Path, force: bool = False, compress: bool = True) -> Path:
    """Write ``data`` to ``output`` atomically (a temporary file, then a rename).

    Args:
        data: the model.
        output: the ``.npz`` path.
        force: replace an existing file.
        compress: zlib-compress the archive (about 35 % smaller for BFM09, several
            times slower to write).

    Returns:
        ``output`` as a :class:`Path`.

    Raises:
        ModelFileError: as :func:`check_output_path`.
    """
    output = check_output_path(output, force)
    try:
        with atomic_output(output, overwrite=force) as tmp:
            save_face_model_data(data, tmp, compress=compress)
    except FileExistsError:  # made by someone else since the check
        raise ModelFileError(f"output exists: {output} (pass --force to overwrite)") from None
    return output
