"""Tests for the engine command line (python -m msma_engine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from msma_engine.cli import build_parser, main, output_paths
from msma_engine.cli_common import unique_stems
from msma_engine.export_gltf import read_glb
from msma_engine.face_model import DEFAULT_MODEL_PATH

needs_head = pytest.mark.skipif(not DEFAULT_MODEL_PATH.exists(), reason="msma_engine/data/default_head.npz not built")


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory) -> Path:
    from skimage import data

    d = tmp_path_factory.mktemp("photos")
    Image.fromarray(data.astronaut()).save(d / "astronaut.png")
    return d


def test_help_lists_commands():
    proc = subprocess.run([sys.executable, "-m", "msma_engine", "--help"], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0
    assert "reconstruct" in proc.stdout and "convert-bfm" in proc.stdout


def test_argument_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["reconstruct", "x.jpg", "-o", "out", "--texture-size", "10"])
    assert exc.value.code == 2
    assert "64-4096" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["reconstruct", "x.jpg", "-o", "out", "--face", "biggest"])
    args = build_parser().parse_args(["reconstruct", "x.jpg", "-o", "out", "--face", "2"])
    assert args.face == 2 and args.fit == "default"


def test_stems_and_paths(tmp_path):
    stems = unique_stems([Path("a/x.jpg"), Path("b/x.png"), Path("c/y.jpg")])
    assert stems[Path("a/x.jpg")] == "x_jpg" and stems[Path("b/x.png")] == "x_png" and stems[Path("c/y.jpg")] == "y"
    paths = output_paths(tmp_path, "y", 1)
    assert paths["glb"].name == "y_face1.glb" and paths["overlay"].name == "y_face1_overlay.png"
    assert output_paths(tmp_path, "y", None)["coeffs"].name == "y_coeffs.json"


@needs_head
def test_reconstruct_writes_outputs_and_refuses_overwrite(photo_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["reconstruct", str(photo_dir / "astronaut.png"), "-o", str(out), "--fit", "none", "--texture-size", "128"]
    assert main(argv) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["astronaut.glb", "astronaut_albedo.png", "astronaut_coeffs.json", "astronaut_overlay.png"]
    doc, _ = read_glb((out / "astronaut.glb").read_bytes())
    from msma_engine.face_model import load_face_model

    model = load_face_model()
    assert doc["meshes"][0]["extras"]["targetNames"] == model.expression_names
    assert len(doc["meshes"][0]["primitives"][0]["targets"]) == model.layout.n_exp
    info = json.loads((out / "astronaut_coeffs.json").read_text())
    assert info["model"] == model.name
    assert set(info["coefficients"]["exp"]) == set(model.expression_names)
    assert len(info["coefficients"]["id"]) == model.layout.n_id
    assert {"fit", "bake", "total"} <= set(info["timings_s"]) and "landmark_nme_fit" in info["metrics"]
    assert np.asarray(Image.open(out / "astronaut_albedo.png")).shape == (128, 128, 3)
    capsys.readouterr()

    before = (out / "astronaut.glb").stat().st_mtime_ns
    assert main(argv) == 0  # complete outputs: skipped, untouched, not an error
    captured = capsys.readouterr()
    assert "skipped" in captured.out and "--force" in captured.out and "error" not in captured.err
    assert (out / "astronaut.glb").stat().st_mtime_ns == before
    assert main(argv + ["--force"]) == 0


@needs_head
def test_bad_files_in_folder(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"\x00not an image")
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(folder / "blank.png")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    code = main(["reconstruct", str(folder), "-o", str(tmp_path / "out"), "--fit", "none"])
    assert code == 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(err) == 2
    assert any(f"{folder / 'broken.jpg'}: " in ln and "Pillow" in ln for ln in err)
    assert any(f"{folder / 'blank.png'}: no face found" in ln for ln in err)
    assert not any("Traceback" in ln for ln in err)
    assert list((tmp_path / "out").iterdir()) == []


def test_bad_model_is_fatal(photo_dir, tmp_path, capsys):
    code = main(["reconstruct", str(photo_dir), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "none.npz")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "none.npz" in err


def test_weights_none_is_the_path_without_a_network():
    parse = build_parser().parse_args
    assert parse(["reconstruct", "x.jpg", "-o", "out", "--weights", "none"]).weights is None
    assert parse(["reconstruct", "x.jpg", "-o", "out", "--weights", "NONE"]).weights is None
    assert parse(["reconstruct", "x.jpg", "-o", "out"]).weights is None
    assert parse(["reconstruct", "x.jpg", "-o", "out", "--weights", "w.pt"]).weights == Path("w.pt")
