"""Reliability of ``python -m msma_engine reconstruct``'s outputs: nothing lost, nothing mixed.

The reconstructor is the stand-in of ``cli_fakes`` (the CLI's file handling is under test,
not the fit); races and interruptions use real child processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cli_fakes
from msma_engine.cli import main, output_paths
from msma_engine.export_gltf import read_glb
from msma_engine.fileio import TEMP_MARK

ROOT = Path(__file__).resolve().parents[2]


def _photo(path: Path, grey: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((448, 460, 3), grey, np.uint8)).save(path)
    return path


def _origin(paths: dict[str, Path]) -> dict[str, object]:
    """Which photo each of a face's four files came from (grey level or path)."""
    doc, binary = read_glb(paths["glb"].read_bytes())
    view = doc["bufferViews"][doc["images"][0]["bufferView"]]
    import io

    glb_tex = np.asarray(Image.open(io.BytesIO(binary[view.get("byteOffset", 0):][:view["byteLength"]])))
    return {
        "glb": int(glb_tex[0, 0, 0]),
        "albedo": int(np.asarray(Image.open(paths["albedo"]))[0, 0, 0]),
        "coeffs": json.loads(paths["coeffs"].read_text())["image"],
        "overlay": int(np.asarray(Image.open(paths["overlay"]))[0, 0, 0]),
    }


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


@pytest.mark.slow  # two child processes (~10 s on the shared machine)
def test_two_runs_into_one_folder_do_not_mix(tmp_path):
    """Issue 14.2: the old CLI let both runs write p1's files (its reads of rec.model sat between check and write)."""
    x, y = _photo(tmp_path / "X" / "p1.png", 60), _photo(tmp_path / "Y" / "p1.png", 200)
    out, barrier = tmp_path / "race", tmp_path / "barrier"
    barrier.mkdir()
    common = {"barrier": str(barrier), "overlay_delay": 0.0}
    a = subprocess.Popen(cli_fakes.child_command(["reconstruct", str(x), "-o", str(out)], reconstruct_delay=0.2,
                                                 **{**common, "overlay_delay": 1.0}),
                         env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    b = subprocess.Popen(cli_fakes.child_command(["reconstruct", str(y), "-o", str(out)], model_delay=0.3, **common),
                         env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    res = [p.communicate(timeout=120) + (p.returncode,) for p in (a, b)]
    assert all(code == 0 for _, _, code in res), res
    origin = _origin(output_paths(out, "p1", None))
    grey = origin["albedo"]
    assert grey in (60, 200) and origin["glb"] == grey and origin["overlay"] == grey, origin
    assert origin["coeffs"] == str(x if grey == 60 else y), origin
    skipped = [out_ for out_, _, _ in res if "skipped" in out_]
    assert len(skipped) == 1, res  # the second run found the first one's complete outputs
    assert sorted(p.name for p in out.iterdir()) == ["p1.glb", "p1_albedo.png", "p1_coeffs.json", "p1_overlay.png"]


@pytest.mark.slow  # a child process
def test_killed_run_leaves_nothing_and_rerun_completes(tmp_path, monkeypatch, capsys):
    """Issue 14.3: a process killed while rendering the overlay left p.glb, albedo and coeffs behind."""
    photo = _photo(tmp_path / "in" / "p.png", 90)
    out = tmp_path / "out"
    proc = subprocess.run(cli_fakes.child_command(["reconstruct", str(photo), "-o", str(out)], overlay="kill"),
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9
    assert [p.name for p in out.iterdir() if not p.name.endswith(".lock")] == []  # no outputs, no temporaries

    cli_fakes.install(monkeypatch)
    assert main(["reconstruct", str(photo), "-o", str(out)]) == 0  # the stale lock is taken over
    paths = output_paths(out, "p", None)
    assert sorted(out.iterdir()) == sorted(paths.values())
    capsys.readouterr()

    # A set with one file missing (e.g. deleted): the re-run writes just that one.
    kept = {k: p.stat().st_mtime_ns for k, p in paths.items() if k != "overlay"}
    paths["overlay"].unlink()
    assert main(["reconstruct", str(photo), "-o", str(out)]) == 0
    assert paths["overlay"].exists() and all(paths[k].stat().st_mtime_ns == t for k, t in kept.items())
    # Complete: skipped, not an error (the old CLI reported every finished photo as an error).
    assert main(["reconstruct", str(photo), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "skipped" in captured.out and captured.err == ""


def test_ctrl_c_leaves_no_partial_outputs(tmp_path, monkeypatch, capsys):
    photo = _photo(tmp_path / "in" / "p.png", 90)
    cli_fakes.install(monkeypatch, overlay="interrupt")
    assert main(["reconstruct", str(photo), "-o", str(tmp_path / "out")]) == 130
    assert list((tmp_path / "out").iterdir()) == []
    assert "interrupted" in capsys.readouterr().err


def test_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    """Issue 14.3: a full disk left a truncated .glb; atomic_write leaves the old one and no temporary."""
    import errno

    from msma_engine.fileio import atomic_write

    target = atomic_write(tmp_path / "b.glb", b"old complete file")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        atomic_write(target, b"new" * 1000)
    assert target.read_bytes() == b"old complete file"
    assert [p.name for p in tmp_path.iterdir()] == ["b.glb"]
    monkeypatch.undo()
    with pytest.raises(FileExistsError):
        atomic_write(target, b"x", overwrite=False)
    assert target.read_bytes() == b"old complete file" and not any(TEMP_MARK in p.name for p in tmp_path.iterdir())


def test_same_name_in_two_folders_is_refused(tmp_path, monkeypatch, capsys):
    """Issue 14.4: X2/p.png and Y2/p.png with --force overwrote each other and exited 0."""
    fake = cli_fakes.install(monkeypatch)
    x, y = _photo(tmp_path / "X2" / "p.png", 10), _photo(tmp_path / "Y2" / "p.png", 20)
    assert main(["reconstruct", str(x), str(y), "-o", str(tmp_path / "o"), "--force"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(x) in err[0] and str(y) in err[0]
    assert fake.instances == 0 and not (tmp_path / "o").exists()


def test_output_folder_problems_found_before_work(tmp_path, monkeypatch, capsys):
    """Issue 14.7: an uncreatable -o gave a traceback and exit 1."""
    fake = cli_fakes.install(monkeypatch)
    photo = _photo(tmp_path / "p.png", 10)
    (tmp_path / "file").write_text("x")
    assert main(["reconstruct", str(photo), "-o", str(tmp_path / "file" / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "cannot be created" in err[0]
    assert fake.instances == 0


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable_output_folder_found_before_work(tmp_path, monkeypatch, capsys):
    fake = cli_fakes.install(monkeypatch)
    photo = _photo(tmp_path / "p.png", 10)
    out = tmp_path / "ro"
    out.mkdir(mode=0o500)
    assert main(["reconstruct", str(photo), "-o", str(out)]) == 2
    assert fake.instances == 0 and "cannot be created or written" in capsys.readouterr().err


def test_face_number_names_the_outputs(tmp_path, monkeypatch, capsys):
    """Issue 14.15: `--face 1` gave `_face2` when the pipeline counted a low-score detection."""
    cli_fakes.install(monkeypatch, face_index=2)
    photo = _photo(tmp_path / "p.png", 10)
    assert main(["reconstruct", str(photo), "-o", str(tmp_path / "o"), "--face", "1"]) == 0
    assert (tmp_path / "o" / "p_face1.glb").exists() and not (tmp_path / "o" / "p_face2.glb").exists()
    doc, _ = read_glb((tmp_path / "o" / "p_face1.glb").read_bytes())
    assert doc["nodes"][0]["name"] == "p_face1"  # issue 14.17: named after the photo, not the model
    assert main(["reconstruct", str(photo), "-o", str(tmp_path / "o"), "--face", "all"]) == 0
    assert (tmp_path / "o" / "p_face2_coeffs.json").exists()  # --face all: the pipeline's own numbers
    assert main(["reconstruct", str(photo), "-o", str(tmp_path / "o"), "--face", "all"]) == 0
    assert "p_face2.glb exists, skipped" in capsys.readouterr().out


def test_folder_order_is_natural(tmp_path, monkeypatch, capsys):
    cli_fakes.install(monkeypatch)
    for name in ("frame10.png", "frame2.png", "frame1.png"):
        _photo(tmp_path / "seq" / name, 10)
    assert main(["reconstruct", str(tmp_path / "seq"), "-o", str(tmp_path / "o")]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "face(s)" in ln]
    assert [Path(ln.split(":")[0]).name for ln in lines] == ["frame1.png", "frame2.png", "frame10.png"]


def test_programs_set_their_thread_policy_before_torch():
    """Issue 14.16: the README's commands ran with spinning OpenMP threads (2x slower on a busy machine)."""
    env = {k: v for k, v in _env().items() if k != "OMP_WAIT_POLICY"}
    # The policy must be in the environment when torch is imported (OpenMP reads it once).
    hook = ("import sys, os\nseen = []\nclass Spy:\n"
            " def find_spec(self, name, path=None, target=None):\n"
            "  if name == 'torch' and not seen: seen.append(os.environ.get('OMP_WAIT_POLICY'))\n"
            "sys.meta_path.insert(0, Spy())\n")
    for module in ("msma_engine.__main__", "training.__main__", "msma_blender.__main__"):
        code = (hook + f"sys.argv = ['x', '--help']\ntry:\n import {module}\nexcept SystemExit: pass\n"
                "print('torch', seen[0] if seen else None, 'end', os.environ.get('OMP_WAIT_POLICY'))")
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                              cwd=ROOT)
        _, at_torch, _, at_end = proc.stdout.strip().splitlines()[-1].split()
        assert at_end == "PASSIVE" and at_torch in ("PASSIVE", "None"), (module, proc.stdout, proc.stderr[-2000:])
