"""BFM09 + FaceWarehouse converter: recipe, geometry, container, CLI and errors.

The BFM09 files are fabricated in the official layouts (tests/msma_engine/bfm_fixtures.py);
the index files are Deep3DFaceRecon's real ones, read from outside the repository.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

import bfm_fixtures as bf
from msma_engine import bfm09
from msma_engine.cli_convert import add_convert_bfm_parser, main
from msma_engine.errors import ModelFileError
from msma_engine.geometry import vertex_normals
from msma_engine.matfile import read_mat_arrays
from msma_engine.model_file import load_face_model_data

HELPERS = bf.helpers_dir()
needs_helpers = pytest.mark.skipif(
    not all((HELPERS / f).is_file() for f in bfm09.BFM_FOLDER_FILES),
    reason=f"Deep3DFaceRecon's BFM index files are not at {HELPERS} (set MSMA_BFM_HELPERS); "
           "they are not redistributed with the repository")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def fab(tmp_path_factory) -> bf.FabricatedBFM:
    if not all((HELPERS / f).is_file() for f in bfm09.BFM_FOLDER_FILES):
        pytest.skip(f"Deep3DFaceRecon's BFM index files are not at {HELPERS}")
    return bf.fabricate_bfm09(tmp_path_factory.mktemp("bfm09_src"), HELPERS)


@pytest.fixture(scope="session")
def converted(fab):
    return bfm09.convert_bfm09(fab.morphable_model, fab.exp_pca, HELPERS)


@pytest.fixture(scope="session")
def front_mat(fab, tmp_path_factory) -> Path:
    return bf.write_reference_front_mat(tmp_path_factory.mktemp("bfm09_front") / "BFM_model_front.mat",
                                        fab, HELPERS)


@pytest.fixture(scope="session")
def facemodel_info():
    return scipy.io.loadmat(HELPERS / "facemodel_info.mat")


def _sample(rng, n, high):
    return rng.integers(0, high, size=n)


@needs_helpers
class TestRecipe:
    def test_sizes_and_names(self, converted):
        d = converted
        assert (d.n_vertices, d.n_triangles) == (35709, 70789)
        assert (d.n_id, d.n_exp, d.n_tex) == (80, 64, 80)
        assert d.expression_names[0] == "exp_00" and d.expression_names[-1] == "exp_63"
        assert np.all(d.expression_range == np.array([-3.0, 3.0], np.float32))
        assert d.albedo_space == "vertex" and d.units == "metre" and d.name == "bfm09"
        assert d.metadata["components_in_source"] == {"id": 100, "exp": 79, "tex": 100}

    def test_identity_basis_is_shape_pc_times_std_in_metres(self, converted, fab):
        rng = np.random.default_rng(1)
        k = np.r_[0, 79, _sample(rng, 200, 80)]
        i = np.r_[0, 35708, _sample(rng, 200, 35709)]
        c = np.r_[0, 2, _sample(rng, 200, 3)]
        row = 3 * fab.front_in_bfm[i] + c
        expected = fab.shape_pc[row, k].astype(np.float64) * fab.shape_ev[k, 0] * 1e-6
        np.testing.assert_allclose(converted.id_basis[k, i, c], expected, rtol=1e-6, atol=1e-12)

    def test_expression_basis_is_exp_pca_times_std_exp_in_metres(self, converted, fab):
        std_exp = np.loadtxt(HELPERS / "std_exp.txt")
        rng = np.random.default_rng(2)
        k = np.r_[0, 63, _sample(rng, 200, 64)]
        i = np.r_[0, 35708, _sample(rng, 200, 35709)]
        c = np.r_[1, 2, _sample(rng, 200, 3)]
        expected = fab.exp_pc[k, 3 * fab.front_idx[i] + c].astype(np.float64) * std_exp[k] * 1e-6
        np.testing.assert_allclose(converted.exp_basis[k, i, c], expected, rtol=1e-6, atol=1e-12)

    def test_albedo_is_texture_over_255(self, converted, fab):
        rng = np.random.default_rng(3)
        k, i, c = _sample(rng, 300, 80), _sample(rng, 300, 35709), _sample(rng, 300, 3)
        row = 3 * fab.front_in_bfm[i] + c
        np.testing.assert_allclose(converted.albedo_basis[k, i, c],
                                   fab.tex_pc[row, k].astype(np.float64) * fab.tex_ev[k, 0] / 255, rtol=1e-6)
        np.testing.assert_allclose(converted.albedo_mean[i, c], fab.tex_mu[row, 0] / 255, rtol=1e-6)
        assert 0.0 <= converted.albedo_mean.min() and converted.albedo_mean.max() <= 1.0

    def test_mean_shape_is_selected_and_recentred(self, converted, fab):
        native = fab.shape_mu.reshape(-1, 3)[fab.front_in_bfm].astype(np.float64) * 1e-6
        np.testing.assert_allclose(converted.mean_shape, native - native.mean(axis=0), atol=1e-7)
        np.testing.assert_allclose(converted.mean_shape.mean(axis=0), 0.0, atol=1e-7)
        np.testing.assert_allclose(converted.metadata["recenter_offset_m"], native.mean(axis=0), rtol=1e-9)

    def test_same_model_as_deep3dfacerecon_front_mat(self, converted, front_mat):
        """Our recipe == Deep3DFaceRecon's transferBFM09 output (transcribed in bfm_fixtures)."""
        via_front = bfm09.convert_front_mat(front_mat)
        for key in ("mean_shape", "id_basis", "exp_basis", "albedo_mean", "albedo_basis", "uv_coords"):
            a, b = getattr(converted, key), getattr(via_front, key)
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * np.abs(a).max(), err_msg=key)
        for key in ("triangles", "uv_triangles", "landmark_indices", "skin_mask", "face_region"):
            np.testing.assert_array_equal(getattr(converted, key), getattr(via_front, key), err_msg=key)

    def test_topology_masks_and_landmarks_from_facemodel_info(self, converted, facemodel_info):
        info = facemodel_info
        np.testing.assert_array_equal(converted.triangles, info["tri"].astype(np.int64) - 1)
        np.testing.assert_array_equal(converted.landmark_indices, info["keypoints"].ravel().astype(np.int64) - 1)
        np.testing.assert_array_equal(converted.skin_mask, info["skinmask"].ravel())
        region = np.flatnonzero(converted.face_region)
        np.testing.assert_array_equal(region, np.sort(info["frontmask2_idx"].ravel().astype(np.int64) - 1))
        assert region.size == 27660
        assert converted.metadata["winding_flipped"] is False


@needs_helpers
class TestGeometry:
    def test_units_are_metres_face_sized(self, converted):
        extent = converted.mean_shape.max(axis=0) - converted.mean_shape.min(axis=0)
        assert 0.10 < extent[0] < 0.25 and 0.08 < extent[1] < 0.25 and 0.03 < extent[2] < 0.15

    def test_normals_point_out_of_the_face(self, converted):
        normals = vertex_normals(torch.from_numpy(converted.mean_shape)[None].double(),
                                 torch.from_numpy(converted.triangles).long())[0].numpy()
        nose_tip = converted.landmark_indices[30]
        assert normals[nose_tip, 2] > 0.9
        assert (normals[converted.face_region, 2] > 0).mean() > 0.99

    def test_landmarks_sit_on_face_features(self, converted):
        lm = converted.mean_shape[converted.landmark_indices]
        nose = lm[30]
        # +x is the subject's left: iBUG 37 (right eye outer corner) has x < nose < iBUG 46.
        assert lm[36, 0] < nose[0] < lm[45, 0]
        assert lm[62, 1] < nose[1] < lm[27, 1] and lm[8, 1] < lm[57, 1]
        assert nose[2] > np.median(lm[:, 2])

    def test_clockwise_source_triangles_are_flipped(self, fab, facemodel_info, converted, tmp_path):
        info = {k: v for k, v in facemodel_info.items() if not k.startswith("__")}
        info["tri"] = info["tri"][:, [0, 2, 1]]
        folder = bf.make_bfm_folder(tmp_path / "BFM", HELPERS, replace={"facemodel_info.mat": info})
        flipped = bfm09.convert_bfm09(fab.morphable_model, fab.exp_pca, folder)
        assert flipped.metadata["winding_flipped"] is True
        np.testing.assert_array_equal(flipped.triangles, converted.triangles)

    def test_uvs_are_a_seamless_front_projection(self, converted):
        uv, v = converted.uv_coords, converted.mean_shape
        assert uv.min() >= 0.0 and uv.max() <= 1.0
        np.testing.assert_array_equal(converted.uv_triangles, converted.triangles)
        # u grows towards the subject's left (+x), so the map reads like the face seen from the front;
        # v is the height.
        left_eye, right_eye = converted.landmark_indices[[45, 36]]
        assert uv[left_eye, 0] > uv[right_eye, 0]
        assert np.corrcoef(uv[:, 0], v[:, 0])[0, 1] > 0.9
        np.testing.assert_allclose(np.corrcoef(uv[:, 1], v[:, 1])[0, 1], 1.0, atol=1e-6)
        # No seam: every triangle is small in UV (a seam would stretch one across the map, ~0.96).
        t = uv[converted.uv_triangles]
        assert np.abs(t - t.mean(axis=1, keepdims=True)).max() < 0.25
        assert converted.metadata["uv_folded_triangles"] < 0.02 * converted.n_triangles


@needs_helpers
def test_container_round_trip(converted, tmp_path):
    path = bfm09.write_face_model(converted, tmp_path / "bfm09.npz", compress=False)
    back = load_face_model_data(path)
    for key in ("mean_shape", "id_basis", "exp_basis", "albedo_mean", "albedo_basis", "triangles", "uv_coords",
                "uv_triangles", "landmark_indices", "skin_mask", "face_region", "expression_range"):
        np.testing.assert_array_equal(getattr(back, key), getattr(converted, key), err_msg=key)
    assert back.expression_names == converted.expression_names and back.metadata == converted.metadata
    assert not list(tmp_path.glob(".*partial*"))


@needs_helpers
class TestCommandLine:
    def test_convert_original_files_then_refuse_overwrite_then_force(self, fab, tmp_path, capsys):
        out = tmp_path / "bfm09.npz"
        argv = ["--morphable-model", str(fab.morphable_model), "--exp-pca", str(fab.exp_pca),
                "--bfm-folder", str(HELPERS), "-o", str(out), "--uncompressed"]
        assert main(argv) == 0
        assert "35709 vertices, 70789 triangles, id/exp/tex 80/64/80" in capsys.readouterr().out
        first = out.stat().st_mtime_ns
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "exists" in err and "--force" in err
        assert out.stat().st_mtime_ns == first
        assert main(argv + ["--force"]) == 0
        assert load_face_model_data(out).n_exp == 64

    def test_subcommand_with_front_mat(self, front_mat, tmp_path):
        parser = argparse.ArgumentParser(prog="python -m msma_engine")
        add_convert_bfm_parser(parser.add_subparsers(dest="command", required=True))
        out = tmp_path / "front.npz"
        args = parser.parse_args(["convert-bfm", "--front-mat", str(front_mat), "-o", str(out), "--uncompressed"])
        assert args.func(args) == 0
        assert load_face_model_data(out).n_vertices == 35709

    @pytest.mark.parametrize("extra", [
        ["--front-mat", "x.mat", "--bfm-folder", "BFM"],   # both sources
        [],                                                 # no source
    ])
    def test_bad_source_arguments_exit_2(self, extra, tmp_path, capsys):
        assert main(extra + ["-o", str(tmp_path / "o.npz")]) == 2
        assert capsys.readouterr().err.startswith("error: give ")


def test_module_entry_point_reports_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "msma_engine.cli_convert", "--front-mat", str(tmp_path / "none.mat"),
                           "-o", str(tmp_path / "o.npz")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: file not found: {tmp_path / 'none.mat'}"]
    assert not (tmp_path / "o.npz").exists()


class TestErrors:
    def test_missing_morphable_model(self, tmp_path):
        with pytest.raises(ModelFileError, match=r"file not found: .*01_MorphableModel\.mat"):
            bfm09.convert_bfm09(tmp_path / "01_MorphableModel.mat", tmp_path / "Exp_Pca.bin", tmp_path)

    @needs_helpers
    def test_wrong_bfm_folder_lists_missing_files(self, fab, tmp_path):
        folder = bf.make_bfm_folder(tmp_path / "BFM", HELPERS, skip=("std_exp.txt", "BFM_exp_idx.mat"))
        with pytest.raises(ModelFileError, match=r"lacks \['BFM_exp_idx\.mat', 'std_exp\.txt'\]"):
            bfm09.convert_bfm09(fab.morphable_model, fab.exp_pca, folder)

    @needs_helpers
    def test_truncated_exp_pca_gives_byte_counts(self, fab, tmp_path):
        cut = tmp_path / "Exp_Pca.bin"
        cut.write_bytes(fab.exp_pca.read_bytes()[:1_000_000])
        with pytest.raises(ModelFileError, match=r"truncated Exp_Pca\.bin: expected 51086404 bytes .* got 1000000"):
            bfm09.convert_bfm09(fab.morphable_model, cut, HELPERS)

    def test_exp_pca_with_bad_header(self, tmp_path):
        path = tmp_path / "Exp_Pca.bin"
        np.array([-5, 0, 0], dtype="<i4").tofile(path)
        with pytest.raises(ModelFileError, match="header says -5 components"):
            bfm09.read_exp_pca(path)

    def test_read_exp_pca_layout(self, tmp_path):
        n_vertices, mean = 4, np.arange(12, dtype=np.float32)
        comps = np.arange(3 * 12, dtype=np.float32).reshape(3, 12) + 100
        path = tmp_path / "small.bin"
        with open(path, "wb") as fh:
            np.array([3], "<i4").tofile(fh)
            mean.tofile(fh)
            comps.tofile(fh)
        got_mean, got = bfm09.read_exp_pca(path, n_keep=2, n_vertices=n_vertices)
        np.testing.assert_array_equal(got_mean, mean)
        np.testing.assert_array_equal(got, comps[:2])
        with pytest.raises(ModelFileError, match="has 3 expression components, need at least 5"):
            bfm09.read_exp_pca(path, n_keep=5, n_vertices=n_vertices)

    @needs_helpers
    def test_truncated_morphable_model(self, fab, tmp_path):
        cut = tmp_path / "01_MorphableModel.mat"
        data = fab.morphable_model.read_bytes()
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(ModelFileError, match=r"01_MorphableModel\.mat: truncated MAT file .* needs \d+ bytes, "
                                                 rf"the file has {len(data) // 2}"):
            bfm09.convert_bfm09(cut, fab.exp_pca, HELPERS)

    @needs_helpers
    def test_truncated_index_file(self, fab, tmp_path):
        folder = bf.make_bfm_folder(tmp_path / "BFM", HELPERS)
        info = folder / "facemodel_info.mat"
        info.write_bytes(info.read_bytes()[:300_000])
        with pytest.raises(ModelFileError, match=r"facemodel_info\.mat: truncated MAT file"):
            bfm09.convert_bfm09(fab.morphable_model, fab.exp_pca, folder)

    @needs_helpers
    def test_morphable_model_lacking_a_key(self, fab, tmp_path):
        path = tmp_path / "01_MorphableModel.mat"
        small = np.zeros((3, 1), np.float32)
        bf.savemat_compressed(path, {"shapeMU": small, "shapePC": small, "texMU": small, "texPC": small,
                                     "texEV": small})
        with pytest.raises(ModelFileError, match=r"missing key\(s\) \['shapeEV'\]; the file holds \['shapeMU'"):
            bfm09.convert_bfm09(path, fab.exp_pca, HELPERS)

    @needs_helpers
    @pytest.mark.parametrize("key, shape, message", [
        ("shapeMU", (1000, 1), r"'shapeMU' has shape \(1000, 1\), expected \(160470, 1\)"),
        ("shapePC", (160470, 50), r"'shapePC' has shape \(160470, 50\), expected \(160470, >= 80\)"),
        ("texEV", (90, 1), r"'texEV' has 90 values but 'texPC' has 100 columns"),
    ])
    def test_morphable_model_wrong_shape(self, fab, tmp_path, key, shape, message):
        arrays = {"shapeMU": np.zeros((160470, 1), np.float32), "shapePC": np.zeros((160470, 80), np.float32),
                  "shapeEV": np.ones((80, 1), np.float32), "texMU": np.zeros((160470, 1), np.float32),
                  "texPC": np.zeros((160470, 100), np.float32), "texEV": np.ones((100, 1), np.float32)}
        arrays[key] = np.zeros(shape, np.float32)
        path = bf.savemat_compressed(tmp_path / "01_MorphableModel.mat", arrays)
        with pytest.raises(ModelFileError, match=message):
            bfm09.convert_bfm09(path, fab.exp_pca, HELPERS)

    @needs_helpers
    def test_std_exp_must_match_exp_pca(self, fab, tmp_path):
        folder = bf.make_bfm_folder(tmp_path / "BFM", HELPERS)
        np.savetxt(folder / "std_exp.txt", np.ones(70))
        with pytest.raises(ModelFileError, match="holds 70 values but .* has 79 expression components"):
            bfm09.convert_bfm09(fab.morphable_model, fab.exp_pca, folder)

    def test_not_a_mat_file(self, tmp_path):
        path = tmp_path / "BFM_model_front.mat"
        path.write_bytes(b"not a MATLAB file " * 20)
        with pytest.raises(ModelFileError, match="not a readable MAT v5 file"):
            bfm09.convert_front_mat(path)

    @pytest.mark.parametrize("arrays, message", [
        ({"meanshape": np.zeros((1, 9)), "idBase": np.zeros((9, 80)), "texBase": np.zeros((9, 80)),
          "meantex": np.zeros((1, 9))}, r"missing key\(s\) \['exBase'\]"),
        ({"meanshape": np.zeros((1, 9)), "idBase": np.zeros((9, 80)), "exBase": np.zeros((9, 10)),
          "texBase": np.zeros((9, 80)), "meantex": np.zeros((1, 9))},
         r"'exBase' has shape \(9, 10\), expected \(9, >= 64\)"),
        ({"meanshape": np.zeros((1, 9)), "idBase": np.zeros((9, 80)), "exBase": np.zeros((9, 64)),
          "texBase": np.zeros((9, 80)), "meantex": np.zeros((1, 6))},
         r"'meantex' has shape \(1, 6\), expected \(1, 9\)"),
    ])
    def test_front_mat_wrong_layout(self, tmp_path, arrays, message):
        path = bf.savemat_compressed(tmp_path / "BFM_model_front.mat", arrays)
        with pytest.raises(ModelFileError, match=message):
            bfm09.convert_front_mat(path)

    def test_read_mat_arrays_names_key_expected_and_actual(self, tmp_path):
        path = bf.savemat_compressed(tmp_path / "a.mat", {"idx": np.zeros((5, 2))})
        with pytest.raises(ModelFileError, match=r"'idx' has shape \(5, 2\), expected \(any, 1\)"):
            read_mat_arrays(path, {"idx": (None, 1)})
        assert read_mat_arrays(path, {"idx": (5, None)})["idx"].shape == (5, 2)

    def test_existing_output_needs_force(self, tmp_path):
        out = tmp_path / "bfm09.npz"
        out.write_bytes(b"keep me")
        with pytest.raises(ModelFileError, match="output exists: .*--force"):
            bfm09.check_output_path(out)
        assert bfm09.check_output_path(out, force=True) == out
        with pytest.raises(ModelFileError, match="must be a .npz file"):
            bfm09.check_output_path(tmp_path / "bfm09.obj")
        with pytest.raises(ModelFileError, match="output folder does not exist"):
            bfm09.check_output_path(tmp_path / "missing" / "bfm09.npz")
        assert out.read_bytes() == b"keep me"


def test_metadata_is_json(converted):
    assert json.loads(json.dumps(converted.metadata)) == converted.metadata
    assert "non-commercial" in converted.metadata["licence"]


def _tiny_front_mat(path: Path, scale_dm: float = 1.0) -> Path:
    """A 5×5-vertex cap in BFM_model_front.mat layout (decimetres, 0-255), CCW seen from +z."""
    n_side = 5
    g = np.linspace(-0.7, 0.7, n_side)
    x, y = np.meshgrid(g, g)
    verts = np.stack([x.ravel(), y.ravel(), 0.5 - 0.3 * (x.ravel() ** 2 + y.ravel() ** 2)], axis=1) * scale_dm
    tri = []
    for r in range(n_side - 1):
        for c in range(n_side - 1):
            a = r * n_side + c
            tri += [[a, a + 1, a + n_side + 1], [a, a + n_side + 1, a + n_side]]
    n = verts.shape[0]
    rng = np.random.default_rng(0)
    arrays = {
        "meanshape": verts.reshape(1, -1), "meantex": np.full((1, 3 * n), 127.5),
        "idBase": rng.normal(size=(3 * n, 80)), "exBase": rng.normal(size=(3 * n, 64)),
        "texBase": rng.normal(size=(3 * n, 80)) * 10, "tri": np.asarray(tri, np.float64) + 1,
        "keypoints": (np.arange(68) % n + 1).reshape(1, 68).astype(np.float64),
        "skinmask": np.ones((1, n)), "frontmask2_idx": np.arange(1, 10, dtype=np.float64).reshape(-1, 1),
    }
    bf.savemat_compressed(path, arrays)
    return path


def test_front_mat_units_without_index_files(tmp_path):
    path = _tiny_front_mat(tmp_path / "BFM_model_front.mat")
    raw = scipy.io.loadmat(path)
    d = bfm09.convert_front_mat(path)
    verts = raw["meanshape"].reshape(-1, 3) * 0.1
    np.testing.assert_allclose(d.mean_shape, verts - verts.mean(axis=0), atol=1e-7)
    np.testing.assert_allclose(d.id_basis[5, 7], raw["idBase"][21:24, 5] * 0.1, rtol=1e-6)
    np.testing.assert_allclose(d.exp_basis[63, 24], raw["exBase"][72:75, 63] * 0.1, rtol=1e-6)
    np.testing.assert_allclose(d.albedo_basis[79, 3], raw["texBase"][9:12, 79] / 255, rtol=1e-6)
    np.testing.assert_allclose(d.albedo_mean, 0.5)
    assert d.face_region.sum() == 9 and d.landmark_indices[0] == 0 and d.landmark_indices[30] == 5
    assert d.metadata["winding_flipped"] is False


def test_mean_shape_in_wrong_units_is_refused(tmp_path):
    path = _tiny_front_mat(tmp_path / "BFM_model_front.mat", scale_dm=1000.0)
    with pytest.raises(ModelFileError, match=r"mean face is 140 m wide .* expected 0\.05-0\.5 m"):
        bfm09.convert_front_mat(path)
