"""The headless `msma` command: output planning, exit codes and messages for bad inputs,
and (slow) an animation from a few frames and the preview render."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("bpy")

from msma_blender import commands  # noqa: E402
from msma_blender.commands import CommandError, plan_outputs  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def photo(tmp_path) -> Path:
    from PIL import Image

    path = tmp_path / "face.png"
    Image.fromarray(np.full((64, 64, 3), 100, np.uint8)).save(path)
    return path


class TestPlanOutputs:
    def test_folder_one_file_per_photo(self, tmp_path):
        fmt, plans = plan_outputs([Path("a.jpg"), Path("b.png")], tmp_path / "out", None, False)
        assert fmt == "blend" and [p.path.name for p in plans] == ["a.blend", "b.blend"]

    def test_single_file_holds_everything(self, tmp_path):
        fmt, plans = plan_outputs([Path("a.jpg"), Path("b.png")], tmp_path / "all.glb", None, False)
        assert fmt == "glb" and len(plans) == 1 and len(plans[0].images) == 2

    def test_animation_into_folder(self, tmp_path):
        fmt, plans = plan_outputs([Path("f1.png"), Path("f2.png")], tmp_path / "out", "fbx", True, label="clip")
        assert fmt == "fbx" and [p.path.name for p in plans] == ["clip.fbx"]

    def test_conflicts(self, tmp_path):
        with pytest.raises(CommandError, match="does not match"):
            plan_outputs([Path("a.jpg")], tmp_path / "x.blend", "glb", False)
        with pytest.raises(CommandError, match="both be written"):
            plan_outputs([Path("x/a.jpg"), Path("y/a.jpg")], tmp_path / "out", None, False)
        fmt, plans = plan_outputs([Path("x/a.jpg"), Path("y/a.png")], tmp_path / "out", None, False)
        assert [p.path.name for p in plans] == ["a_jpg.blend", "a_png.blend"]  # as the engine CLI names them


class TestExitCodes:
    def test_missing_input(self, tmp_path, capsys):
        assert commands.main(["reconstruct", str(tmp_path / "nope.jpg"), "-o", str(tmp_path / "o")]) == 1
        assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nope.jpg'}: no such file or folder"

    def test_empty_folder(self, tmp_path, capsys):
        (tmp_path / "empty").mkdir()
        assert commands.main(["reconstruct", str(tmp_path / "empty"), "-o", str(tmp_path / "o")]) == 1
        assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'empty'}: folder holds no images")

    def test_existing_output_not_overwritten(self, tmp_path, photo, capsys):
        out = tmp_path / "face.blend"
        out.write_bytes(b"user data")
        assert commands.main(["reconstruct", str(photo), "-o", str(out)]) == 1
        assert capsys.readouterr().err.strip() == f"error: {out}: already exists (use --force to overwrite)"
        assert out.read_bytes() == b"user data"

    def test_usage_errors(self, tmp_path, photo, capsys):
        assert commands.main(["reconstruct", str(photo)]) == 2  # no -o
        assert commands.main(["reconstruct", str(photo), "-o", str(tmp_path / "a.blend"), "--format", "glb"]) == 2
        assert commands.main(["reconstruct", str(photo), "-o", str(tmp_path / "o"), "--face", "biggest"]) == 2
        assert commands.main(["reconstruct", str(photo), "-o", str(tmp_path / "o"),
                              "--model", str(tmp_path / "no.npz")]) == 2
        err = capsys.readouterr().err
        assert f"error: {tmp_path / 'no.npz'}: no such file" in err
        assert not (tmp_path / "o").exists()

    def test_bad_model_file(self, tmp_path, photo, capsys):
        bad = tmp_path / "bad.npz"
        bad.write_bytes(b"not a zip")
        assert commands.main(["reconstruct", str(photo), "-o", str(tmp_path / "o"), "--model", str(bad)]) == 2
        assert capsys.readouterr().err.startswith(f"error: {bad}")


class _FakeSession:
    """get_session() stand-in: photos named bad* raise a non-engine error, the others give the sphere face."""

    def __init__(self, result):
        self.result = result

    def reconstruct(self, image_path, **kwargs):
        if Path(image_path).name.startswith("bad"):
            raise RuntimeError("input_size mismatch deep inside the network")
        return [self.result]


def _two_photos(tmp_path):
    from PIL import Image

    paths = [tmp_path / "in" / "bad.png", tmp_path / "in" / "good.png"]
    paths[0].parent.mkdir()
    for p in paths:
        Image.fromarray(np.full((64, 64, 3), 100, np.uint8)).save(p)
    return paths


def test_unexpected_errors_do_not_abort_the_batch(bpy_empty, sphere_face, tmp_path, monkeypatch, capsys):
    """Issue 14.6: any error other than the engine's aborted the whole batch with a traceback."""
    from msma_blender import pipeline

    monkeypatch.setattr(pipeline, "get_session", lambda settings: _FakeSession(sphere_face))
    bad, good = _two_photos(tmp_path)
    out = tmp_path / "out"
    assert commands.main(["reconstruct", str(bad.parent), "-o", str(out), "--format", "glb"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {bad}: unexpected RuntimeError: input_size mismatch deep inside the network"]
    assert (out / "good.glb").stat().st_size > 1000 and not (out / "bad.glb").exists()


def test_failed_export_keeps_the_old_file(bpy_empty, sphere_face, tmp_path, monkeypatch, capsys):
    """Issue 14.3: with --force the old file was deleted before exporting, so a failed export lost it."""
    from msma_blender import pipeline

    monkeypatch.setattr(pipeline, "get_session", lambda settings: _FakeSession(sphere_face))
    _, good = _two_photos(tmp_path)
    out = tmp_path / "good.glb"
    out.write_bytes(b"the previous export")

    def failing(operator, label, **kwargs):
        Path(kwargs["filepath"]).write_bytes(b"half")
        raise RuntimeError("exporter failed")

    monkeypatch.setattr(commands, "_run_operator", failing)
    assert commands.main(["reconstruct", str(good), "-o", str(out), "--force"]) == 1
    assert capsys.readouterr().err.strip() == f"error: {out}: exporter failed"
    assert out.read_bytes() == b"the previous export" and sorted(tmp_path.glob(".*")) == []


def test_output_location_checked_before_work(tmp_path, photo, monkeypatch, capsys):
    """Issue 14.6/14.7: `-o dir.glb --force` (a folder) and an uncreatable -o failed after the work."""
    from msma_blender import pipeline

    def no_session(settings):
        raise AssertionError("the engine must not be loaded")

    monkeypatch.setattr(pipeline, "get_session", no_session)
    (tmp_path / "dir.glb").mkdir()
    assert commands.main(["reconstruct", str(photo), "-o", str(tmp_path / "dir.glb"), "--force"]) == 2
    (tmp_path / "file").write_text("x")
    assert commands.main(["reconstruct", str(photo), "-o", str(tmp_path / "file" / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "is a folder" in err[0] and "cannot be created" in err[1]


def test_ctrl_c_inside_an_exporter_is_not_swallowed():
    """Issue 14.12: Blender turns a KeyboardInterrupt inside an operator into CANCELLED; the batch went on."""
    import signal

    def swallowing_operator(**kwargs):
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            return {"CANCELLED"}
        return {"FINISHED"}

    with pytest.raises(KeyboardInterrupt):
        commands._run_operator(swallowing_operator, "test")
    with pytest.raises(RuntimeError, match="CANCELLED"):
        commands._run_operator(lambda: {"CANCELLED"}, "test")
    commands._run_operator(lambda: {"FINISHED"}, "test")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_manual_pip_command_is_shell_quoted(monkeypatch, tmp_path):
    """Issue 14.14: the printed pip command broke on paths like "Application Support"."""
    import shlex

    from msma_blender import deps

    target = Path("/Users/me/Library/Application Support/Blender/4.2/extensions/.local/lib/site-packages")
    monkeypatch.setattr(deps, "site_packages_dir", lambda package, create=False: target)
    monkeypatch.setattr(deps, "missing_modules", lambda: ["torch"])
    req = tmp_path / "req s.txt"
    req.write_text("torch==2.13.0\nscipy==1.17.1\n")
    monkeypatch.setattr(deps, "requirements_file", lambda package_dir=None: req)
    message = commands.missing_dependencies_message(ImportError("No module named 'torch'"), "bl_ext.user.msma_face")
    commands_text = message.split(" or run: ", 1)[1]
    for cmd in commands_text.split(" && "):
        argv = shlex.split(cmd)
        assert argv[argv.index("--target") + 1] == str(target)


def test_glb_export_leaves_the_window_on_its_scene(bpy_empty, sphere_face, tmp_path):
    """The glTF exporter switches the window to the exported scene, which _write then removes;
    a window left on a removed scene crashed Blender 4.3 at the next context access."""
    result = sphere_face
    window = bpy_empty.context.window
    assert window is not None
    original = window.scene
    for i in range(2):
        out = tmp_path / f"face{i}.glb"
        args = commands.build_parser().parse_args(["reconstruct", "x.png", "-o", str(out)])
        commands._write(out, "glb", [result], args)
        assert out.stat().st_size > 1000
        assert window.scene == original and list(bpy_empty.data.scenes) == [original]


def _run_module(args, tmp_path, timeout=600):
    env = dict(os.environ)
    for var in ("BLENDER_USER_RESOURCES", "BLENDER_USER_CONFIG", "BLENDER_USER_SCRIPTS"):
        env[var] = str(tmp_path / "user" / var.lower())
    return subprocess.run([sys.executable, "-m", "msma_blender", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_animation_from_frames_and_preview(tmp_path):
    """Three shifted crops of the astronaut as frames → one animated face; preview PNG."""
    from PIL import Image
    from skimage import data

    frames = tmp_path / "frames"
    frames.mkdir()
    img = data.astronaut()
    for i, dx in enumerate((0, 6, 12)):
        Image.fromarray(img[10:330, 80 + dx:400 + dx]).save(frames / f"frame{i + 1}.png")
    out = tmp_path / "anim.blend"
    preview = tmp_path / "preview.png"
    proc = _run_module(["reconstruct", str(frames), "-o", str(out), "--animation", "--fit", "none",
                        "--texture-size", "128", "--preview", str(preview), "--preview-over-photo"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.is_file() and preview.is_file()
    check = f"""
import bpy, json
bpy.ops.wm.open_mainfile(filepath={str(out)!r})
obj = bpy.data.objects["anim"]
key_action = obj.data.shape_keys.animation_data.action
fcurves = [fc for layer in key_action.layers for strip in layer.strips for bag in strip.channelbags
           for fc in bag.fcurves] if hasattr(key_action, "layers") else list(key_action.fcurves)
# Blender 5 actions are layered: the object's and the shape keys' curves may share one action.
fcurves += [fc for layer in getattr(obj.animation_data.action, "layers", []) for strip in layer.strips
            for bag in strip.channelbags for fc in bag.fcurves]
paths = sorted({{fc.data_path for fc in fcurves}})
print(json.dumps(dict(n=len([p for p in paths if p.startswith("key_blocks[")]),
                      pts=sorted({{len(fc.keyframe_points) for fc in fcurves}}),
                      pose="location" in paths and "rotation_euler" in paths,
                      rot=obj.animation_data is not None, frames=list(obj["msma_frames"]))))
"""
    res = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "u2")})
    import json

    info = json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("{")][-1])
    assert info["n"] == 52 and info["pts"] == [3] and info["rot"] and info["pose"]
    assert [Path(f).name for f in info["frames"]] == ["frame1.png", "frame2.png", "frame3.png"]
    from PIL import Image as _Image

    with _Image.open(preview) as im:
        assert im.size == (512, 512)

