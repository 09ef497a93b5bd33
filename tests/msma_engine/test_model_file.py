import zipfile

import numpy as np
import pytest

from sphere_model import make_sphere_model
from msma_engine.errors import ModelFileError
from msma_engine.model_file import load_face_model_data, save_face_model_data


def test_round_trip(tmp_path):
    data = make_sphere_model(albedo_space="uv")
    path = save_face_model_data(data, tmp_path / "m.npz")
    back = load_face_model_data(path)
    assert back.name == "sphere" and back.albedo_space == "uv"
    assert back.expression_names == data.expression_names
    np.testing.assert_array_equal(back.triangles, data.triangles)
    np.testing.assert_allclose(back.id_basis, data.id_basis)
    assert back.metadata == {"source": "test fixture"}


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_face_model_data(tmp_path / "nope.npz")


def test_truncated_file(tmp_path):
    path = save_face_model_data(make_sphere_model(), tmp_path / "m.npz")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelFileError, match="not a readable"):
        load_face_model_data(path)


def test_wrong_format(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, a=np.zeros(3))
    with pytest.raises(ModelFileError, match="format"):
        load_face_model_data(path)


def test_missing_key(tmp_path):
    path = save_face_model_data(make_sphere_model(), tmp_path / "m.npz")
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "skin_mask"}
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match="skin_mask"):
        load_face_model_data(path)


def test_inconsistent_shapes_are_named(tmp_path):
    data = make_sphere_model()
    data.exp_basis = data.exp_basis[:, :-1]
    with pytest.raises(ModelFileError, match="exp_basis"):
        save_face_model_data(data, tmp_path / "m.npz")
    data = make_sphere_model()
    data.triangles = data.triangles + 10_000
    with pytest.raises(ModelFileError, match="triangles index"):
        data.validate()


def test_not_a_zip(tmp_path):
    path = tmp_path / "m.npz"
    path.write_text("hello")
    with pytest.raises(ModelFileError):
        load_face_model_data(path)
    assert not zipfile.is_zipfile(path)


def _with_polygons_and_interior(data):
    """The sphere model with its triangles paired into quads where possible and a 4-vertex interior."""
    from msma_engine.model_file import triangulate_polygons

    tris, uv_tris = data.triangles.astype(np.int64), data.uv_triangles.astype(np.int64)
    # Quads (a, b, c, d) whose split along a-c is two consecutive triangles; the rest stay triangles.
    polys, uv_polys, f = [], [], 0
    while f < len(tris):
        t, u = tris[f], uv_tris[f]
        if f + 1 < len(tris) and tris[f + 1][0] == t[0] and tris[f + 1][1] == t[2]:
            polys.append([*t, tris[f + 1][2]])
            uv_polys.append([*u, uv_tris[f + 1][2]])
            f += 2
        else:
            polys.append([*t, -1])
            uv_polys.append([*u, -1])
            f += 1
    data.polygons, data.uv_polygons = np.array(polys), np.array(uv_polys)
    data.triangles, _ = triangulate_polygons(data.polygons)
    data.uv_triangles, _ = triangulate_polygons(data.uv_polygons)
    data.source_index = np.arange(data.n_vertices) + 100
    data.interior_mean_shape = np.eye(4, 3).astype(np.float32)
    data.interior_id_basis = np.zeros((data.n_id, 4, 3), np.float32)
    data.interior_exp_basis = np.ones((data.n_exp, 4, 3), np.float32)
    data.interior_polygons = np.array([[0, 1, 2, 3], [0, 2, 1, -1]])
    data.interior_part = np.array([0, 1])
    data.interior_part_names = ["teeth", "tongue"]
    return data


def test_triangulate_polygons_quads_and_triangles():
    from msma_engine.model_file import triangulate_polygons

    tris, of = triangulate_polygons(np.array([[0, 1, 2, 3], [4, 5, 6, -1], [7, 8, 9, 10]]))
    np.testing.assert_array_equal(tris, [[0, 1, 2], [0, 2, 3], [4, 5, 6], [7, 8, 9], [7, 9, 10]])
    np.testing.assert_array_equal(of, [0, 0, 1, 2, 2])


def test_optional_keys_round_trip(tmp_path):
    data = _with_polygons_and_interior(make_sphere_model(albedo_space="uv"))
    assert (data.polygons[:, 3] >= 0).any() and (data.polygons[:, 3] < 0).any()
    back = load_face_model_data(save_face_model_data(data, tmp_path / "m.npz"))
    for key in ("polygons", "uv_polygons", "source_index", "interior_mean_shape", "interior_id_basis",
                "interior_exp_basis", "interior_polygons", "interior_part"):
        np.testing.assert_array_equal(getattr(back, key), getattr(data, key), err_msg=key)
    assert back.interior_part_names == ["teeth", "tongue"] and back.has_interior
    plain = load_face_model_data(save_face_model_data(make_sphere_model(), tmp_path / "p.npz"))
    assert plain.polygons is None and plain.source_index is None and not plain.has_interior


def test_inconsistent_optional_keys_are_named():
    data = _with_polygons_and_interior(make_sphere_model())
    data.triangles = data.triangles[::-1].copy()
    with pytest.raises(ModelFileError, match="triangulate_polygons"):
        data.validate()
    data = _with_polygons_and_interior(make_sphere_model())
    data.polygons = data.polygons.copy()
    data.polygons[0, 1] = -1
    with pytest.raises(ModelFileError, match="polygons index"):
        data.validate()
    data = _with_polygons_and_interior(make_sphere_model())
    data.uv_polygons = None
    with pytest.raises(ModelFileError, match="come together"):
        data.validate()
    data = _with_polygons_and_interior(make_sphere_model())
    data.interior_exp_basis = data.interior_exp_basis[:, :3]
    with pytest.raises(ModelFileError, match=r"interior_exp_basis must be \(3, 4, 3\)"):
        data.validate()
    data = _with_polygons_and_interior(make_sphere_model())
    data.interior_part_names = None
    with pytest.raises(ModelFileError, match="interior_part_names"):
        data.validate()


def test_float_triangles_are_a_model_file_error(tmp_path):
    """Issue 14.10: float triangles passed validation and crashed later with an IndexError."""
    data = make_sphere_model()
    path = save_face_model_data(data, tmp_path / "m.npz")
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["triangles"] = arrays["triangles"].astype(np.float32)
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match="triangles must hold integer indices, got dtype float32"):
        load_face_model_data(path)
