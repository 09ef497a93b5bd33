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
