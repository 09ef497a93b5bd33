"""Fabricated BFM09 / Exp_Pca.bin / BFM_model_front.mat files in the official layouts.

The real Basel Face Model cannot be shipped or downloaded here, so tests write
files with the official keys, shapes, dtypes and binary layout, filled with
fabricated values, and combine them with the real (MIT) index files from
Deep3DFaceRecon kept outside the repository (``../shared/data/bfm09_helpers``,
or ``$MSMA_BFM_HELPERS``).

The fabricated mean shape is a face-sized cap laid over the *real* front-face
triangulation: the mesh is flattened with a Tutte embedding (outer boundary on a
circle), mapped by the affine map that best puts its 68 keypoint vertices on
Deep3DFaceRecon's standard 3D landmarks (``similarity_Lm3D_all.mat``; this fixes
left/right and up/down as in the real model), scaled to ~16 cm wide and lifted
onto an ellipsoid towards +z. Triangle orientation in that geometry is the real
model's, so winding and normal checks are meaningful.

Departures from the original files, to keep fixtures small and quick:
``shapePC``/``texPC`` have 100 columns instead of 199 (the converter keeps 80);
their entries are multiples of 1/64 (they compress well); ``tl`` holds fabricated
triangles of the right shape; ``segbin`` is fabricated; ``segMM``/``segMB``
are omitted (the converter reads none of these).
"""

from __future__ import annotations

import io
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from shared_data import BFM_HELPERS

__all__ = ["helpers_dir", "FabricatedBFM", "fabricate_bfm09", "write_reference_front_mat",
           "make_bfm_folder", "savemat_compressed", "N_FAB_COMPONENTS"]

N_BFM = 53490
N_EXP_VERTS = 53215
N_FRONT = 35709
N_FAB_COMPONENTS = 100
N_EXP_COMPONENTS = 79   # as the original Exp_Pca.bin and std_exp.txt


def helpers_dir() -> Path:
    """Where the real Deep3DFaceRecon index files live (may not exist)."""
    return BFM_HELPERS


@dataclass
class FabricatedBFM:
    """Paths of the fabricated files and the arrays written into them."""

    morphable_model: Path
    exp_pca: Path
    shape_mu: np.ndarray     # (160470, 1) float32, micrometres
    shape_pc: np.ndarray     # (160470, 100) float32
    shape_ev: np.ndarray     # (100, 1) float32
    tex_mu: np.ndarray       # (160470, 1) float32, 0-255
    tex_pc: np.ndarray
    tex_ev: np.ndarray
    exp_mu: np.ndarray       # (159645,) float32
    exp_pc: np.ndarray       # (79, 159645) float32, component-major as in the file
    front_idx: np.ndarray    # (35709,) 0-based into the 53,215 expression vertices
    front_in_bfm: np.ndarray  # (35709,) 0-based into the 53,490 BFM09 vertices


def _load_indices(helpers: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    front = scipy.io.loadmat(helpers / "BFM_front_idx.mat")["idx"].astype(np.int64).ravel() - 1
    trim = scipy.io.loadmat(helpers / "BFM_exp_idx.mat")["trimIndex"].astype(np.int64).ravel() - 1
    info = scipy.io.loadmat(helpers / "facemodel_info.mat")
    return front, trim, info


def _tutte_disk(triangles: np.ndarray, n: int) -> np.ndarray:
    """(n, 2) Tutte embedding of a disk-like mesh; the longest boundary loop on the unit circle."""
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    key = np.sort(edges, axis=1)
    uniq, inverse, count = np.unique(key[:, 0] * n + key[:, 1], return_inverse=True, return_counts=True)
    boundary = edges[count[inverse] == 1]
    following = dict(zip(boundary[:, 0].tolist(), boundary[:, 1].tolist()))
    loops, seen = [], set()
    for start in following:
        if start in seen:
            continue
        loop, cur = [start], following[start]
        seen.add(start)
        while cur != start:
            loop.append(cur)
            seen.add(cur)
            cur = following[cur]
        loops.append(loop)
    outer = np.asarray(max(loops, key=len))
    i, j = uniq // n, uniq % n
    adj = sp.coo_matrix((np.ones(2 * len(uniq)), (np.r_[i, j], np.r_[j, i])), shape=(n, n)).tocsr()
    lap = (sp.diags(np.asarray(adj.sum(axis=1)).ravel()) - adj).tocsr()
    pos = np.zeros((n, 2))
    angle = 2 * np.pi * np.arange(len(outer)) / len(outer)
    pos[outer] = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    free = np.ones(n, dtype=bool)
    free[outer] = False
    pos[free] = spla.spsolve(lap[free][:, free].tocsc(), -(lap[free][:, ~free] @ pos[~free]))
    return pos


def _front_face_micrometres(helpers: Path, info: dict) -> np.ndarray:
    """(35709, 3) a face-like cap over the real front triangulation, micrometres, +z out."""
    triangles = info["tri"].astype(np.int64) - 1
    disk = _tutte_disk(triangles, N_FRONT)
    keypoints = info["keypoints"].astype(np.int64).ravel() - 1
    lm = scipy.io.loadmat(helpers / "similarity_Lm3D_all.mat")["lm"].astype(np.float64)
    design = np.c_[disk[keypoints], np.ones(68)]
    affine, *_ = np.linalg.lstsq(design, lm[:, :2], rcond=None)
    xy = np.c_[disk, np.ones(N_FRONT)] @ affine
    xy *= 160_000.0 / (xy[:, 0].max() - xy[:, 0].min())           # 16 cm wide
    depth = 90_000.0 * np.sqrt(np.clip(1.0 - (disk ** 2).sum(axis=1), 0.0, None))
    # An off-centre origin so that recentring has something to do.
    return np.c_[xy, depth] + np.array([3_000.0, 20_000.0, 40_000.0])


def savemat_compressed(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write a zlib-compressed MAT v5 file like ``savemat(do_compression=True)``, but quickly.

    scipy compresses at zlib level 6 (~8 s per 64 MB here); this writes the same
    layout — each variable's miMATRIX element wrapped in a miCOMPRESSED (15)
    element — at level 1.
    """
    buf = io.BytesIO()
    scipy.io.savemat(buf, arrays, do_compression=False, format="5")
    raw = buf.getvalue()
    out = [raw[:128]]                                       # the 128-byte header
    pos = 128
    while pos < len(raw):
        _, n_bytes = struct.unpack_from("<II", raw, pos)
        end = pos + 8 + n_bytes + (-n_bytes) % 8          # uncompressed elements are 8-byte padded
        packed = zlib.compress(raw[pos:end], 1)
        out += [struct.pack("<II", 15, len(packed)), packed]
        pos = end
    path.write_bytes(b"".join(out))
    return path


def _sixty_fourths(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random multiples of 1/64 in [-1, 1], float32 (exact, and they compress well)."""
    return rng.integers(-64, 65, size=shape, dtype=np.int8).astype(np.float32) * np.float32(1 / 64)


def fabricate_bfm09(folder: Path, helpers: Path, seed: int = 0) -> FabricatedBFM:
    """Write ``01_MorphableModel.mat`` and ``Exp_Pca.bin`` into ``folder``.

    Args:
        folder: output folder (created).
        helpers: folder with the real index files.
        seed: random seed.

    Returns:
        The paths and every array written.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    front, trim, info = _load_indices(helpers)
    front_in_bfm = trim[front]

    verts = np.empty((N_BFM, 3))
    # Vertices outside the front face: a shell behind it (never read by the converter).
    direction = rng.normal(size=(N_BFM, 3))
    direction[:, 2] = -np.abs(direction[:, 2])
    verts[:] = direction / np.linalg.norm(direction, axis=1, keepdims=True) * 90_000.0
    verts[front_in_bfm] = _front_face_micrometres(helpers, info)
    shape_mu = verts.reshape(-1, 1).astype(np.float32)
    k = N_FAB_COMPONENTS
    shape_pc = _sixty_fourths(rng, (3 * N_BFM, k))
    shape_ev = (2_000.0 * 0.97 ** np.arange(k)).reshape(-1, 1).astype(np.float32)
    skin = np.array([200.0, 150.0, 125.0])
    tex_mu = (skin + rng.integers(-20, 21, size=(N_BFM, 3))).reshape(-1, 1).astype(np.float32)
    tex_pc = _sixty_fourths(rng, (3 * N_BFM, k))
    tex_ev = (12.0 * 0.97 ** np.arange(k)).reshape(-1, 1).astype(np.float32)
    mm_path = folder / "01_MorphableModel.mat"
    savemat_compressed(mm_path, {
        "shapeMU": shape_mu, "shapePC": shape_pc, "shapeEV": shape_ev,
        "texMU": tex_mu, "texPC": tex_pc, "texEV": tex_ev,
        "tl": rng.integers(1, N_BFM + 1, size=(106466, 3)).astype(np.float64),
        "segbin": (rng.random((N_BFM, 4)) < 0.25).astype(np.float64),
    })

    exp_verts = verts[trim]
    exp_mu = exp_verts.ravel().astype(np.float32)
    exp_pc = _sixty_fourths(rng, (N_EXP_COMPONENTS, 3 * N_EXP_VERTS)) * np.float32(0.01)
    exp_path = folder / "Exp_Pca.bin"
    with open(exp_path, "wb") as fh:
        np.array([N_EXP_COMPONENTS], dtype="<i4").tofile(fh)
        exp_mu.astype("<f4").tofile(fh)
        exp_pc.astype("<f4").tofile(fh)
    return FabricatedBFM(mm_path, exp_path, shape_mu, shape_pc, shape_ev, tex_mu, tex_pc, tex_ev,
                         exp_mu, exp_pc, front, front_in_bfm)


def write_reference_front_mat(path: Path, fab: FabricatedBFM, helpers: Path) -> Path:
    """Write ``BFM_model_front.mat`` the way Deep3DFaceRecon's ``transferBFM09`` does.

    An independent, step-by-step transcription of its array operations (decimetres,
    texture 0-255, uncompressed MAT v5 as its ``savemat`` call writes), used to
    cross-check :func:`msma_engine.bfm09.convert_bfm09`.
    """
    exp_pc = fab.exp_pc.T                                   # (3n, 79), as LoadExpBasis returns
    std_exp = np.loadtxt(helpers / "std_exp.txt")
    k = fab.shape_pc.shape[1]
    id_base = (fab.shape_pc * fab.shape_ev.reshape(-1, k) / 1e5)[:, :80]
    ex_base = (exp_pc * std_exp.reshape(-1, 79) / 1e5)[:, :64]
    tex_base = (fab.tex_pc * fab.tex_ev.reshape(-1, k))[:, :80]
    index_exp = scipy.io.loadmat(helpers / "BFM_front_idx.mat")["idx"].astype(np.int32) - 1
    index_shape = scipy.io.loadmat(helpers / "BFM_exp_idx.mat")["trimIndex"].astype(np.int32) - 1
    index_shape = index_shape[index_exp]
    id_base = id_base.reshape(-1, 3, 80)[index_shape, :, :].reshape(-1, 80)
    tex_base = tex_base.reshape(-1, 3, 80)[index_shape, :, :].reshape(-1, 80)
    ex_base = ex_base.reshape(-1, 3, 64)[index_exp, :, :].reshape(-1, 64)
    mean_shape = (fab.shape_mu.reshape(-1, 3) / 1e5)[index_shape, :].reshape(1, -1)
    mean_tex = fab.tex_mu.reshape(-1, 3)[index_shape, :].reshape(1, -1)
    info = scipy.io.loadmat(helpers / "facemodel_info.mat")
    scipy.io.savemat(path, {
        "meanshape": mean_shape, "meantex": mean_tex, "idBase": id_base, "exBase": ex_base,
        "texBase": tex_base, "tri": info["tri"], "point_buf": info["point_buf"], "tri_mask2": info["tri_mask2"],
        "keypoints": info["keypoints"], "frontmask2_idx": info["frontmask2_idx"], "skinmask": info["skinmask"],
    })
    return path


def make_bfm_folder(folder: Path, helpers: Path, skip: tuple[str, ...] = (),
                    replace: dict[str, dict] | None = None) -> Path:
    """A ``BFM/`` folder in ``folder`` with the real index files (copied to tmp, never to the repo).

    Args:
        folder: where to create it.
        helpers: the real index files.
        skip: file names to leave out.
        replace: file name -> MAT variables to write instead of copying.
    """
    folder.mkdir(parents=True, exist_ok=True)
    replace = replace or {}
    for name in ("BFM_front_idx.mat", "BFM_exp_idx.mat", "facemodel_info.mat", "std_exp.txt"):
        if name in skip:
            continue
        if name in replace:
            savemat_compressed(folder / name, replace[name])
        else:
            shutil.copyfile(helpers / name, folder / name)
    return folder
