"""The built extension zip: Blender's validator, headless install into a fresh user directory,
registration, and (slow) the Reconstruct Face operator and the `msma` command end to end.

Each Blender session runs in a subprocess with its own BLENDER_USER_* folders and without
the repository on sys.path, so the zip must carry everything (engine wheel, default model).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("bpy")

ROOT = Path(__file__).resolve().parents[2]
EXT_MODULE = "bl_ext.user_default.msma_face"


def _load_build_module():
    spec = importlib.util.spec_from_file_location("msma_build_script", ROOT / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory) -> Path:
    return _load_build_module().build(tmp_path_factory.mktemp("dist"))[0]


def run_blender(script: str, tmp_path: Path, timeout: float = 600) -> dict:
    """Run ``script`` with the bpy module in a clean process; it prints one JSON line last.

    Returns:
        The JSON object, plus the process's standard error under ``"stderr"``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLENDER_USER_", "PYTHONPATH"))}
    for var in ("BLENDER_USER_RESOURCES", "BLENDER_USER_CONFIG", "BLENDER_USER_SCRIPTS"):
        env[var] = str(tmp_path / "user" / var.lower())
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert proc.returncode == 0 and lines, f"rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return {**json.loads(lines[-1]), "stderr": proc.stderr}


INSTALL = """
import importlib, json, sys
import bpy
assert not any(p.rstrip("/").endswith("work/main") for p in sys.path), sys.path
res = bpy.ops.extensions.package_install_files(filepath={zip!r}, repo="user_default", enable_on_install=True)
mod = sys.modules["{ext}"]
out = {{"install": sorted(res)}}
"""


def test_zip_contents_and_validator(extension_zip, tmp_path):
    names = set(zipfile.ZipFile(extension_zip).namelist())
    assert {"blender_manifest.toml", "__init__.py", "operators.py", "conversion.py",
            "requirements-extension.txt"} <= names
    wheels = [n for n in names if n.startswith("wheels/") and n.endswith(".whl")]
    assert len(wheels) == 1
    wheel_names = zipfile.ZipFile(zipfile.ZipFile(extension_zip).open(wheels[0])).namelist()
    assert "msma_engine/pipeline.py" in wheel_names and "msma_engine/result.py" in wheel_names
    assert "msma_engine/data/default_head.npz" in wheel_names  # the default model is package data
    assert not any("tests/" in n or "__pycache__" in n for n in names)
    reqs = zipfile.ZipFile(extension_zip).read("requirements-extension.txt").decode()
    # the run-time set, pinned: torch, scipy, pillow, opencv; no numpy (Blender's), no mediapipe, no bpy
    assert sorted(line.split("==")[0] for line in reqs.split()) == [
        "opencv-python-headless", "pillow", "scipy", "torch"]
    validator = _load_build_module().find_blender_ext()
    proc = subprocess.run([sys.executable, str(validator), "validate", str(extension_zip)],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "Success" in proc.stdout, proc.stdout + proc.stderr


def test_install_and_register(extension_zip, tmp_path):
    script = INSTALL.format(zip=str(extension_zip), ext=EXT_MODULE) + """
import msma_engine
out["engine_file"] = msma_engine.__file__
out["operator"] = hasattr(bpy.ops.msma, "reconstruct_face") and "MSMA_OT_reconstruct_face" in dir(bpy.types)
out["panels"] = [p for p in ("MSMA_PT_reconstruct", "MSMA_PT_options", "MSMA_PT_animation") if hasattr(bpy.types, p)]
out["category"] = bpy.types.MSMA_PT_reconstruct.bl_category
out["cli"] = mod._cli_handle is not None
prefs = bpy.context.preferences.addons["{ext}"].preferences
out["prefs"] = [prefs.device, prefs.model_path]
out["scene"] = [bpy.context.scene.msma.fit, bpy.context.scene.msma.texture_size]
out["help_rc"] = mod._cli_command(["reconstruct", "--help"])
out["bad_rc"] = mod._cli_command(["reconstruct", "missing.jpg", "-o", "out"])
out["online"] = bpy.app.online_access
try:  # offline (the default in background mode): refused before pip runs, with the reason
    out["install_deps"] = sorted(bpy.ops.msma.install_dependencies())
except RuntimeError as err:
    out["install_deps"] = str(err)
out["torch_build"] = [prefs.torch_build, prefs.cuda_index_url]
print(json.dumps(out))
""".replace("{ext}", EXT_MODULE)
    out = run_blender(script, tmp_path)
    assert out["install"] == ["FINISHED"]
    assert "extensions" in out["engine_file"] and "/work/main/" not in out["engine_file"]
    assert out["operator"] and out["cli"]
    assert out["panels"] == ["MSMA_PT_reconstruct", "MSMA_PT_options", "MSMA_PT_animation"]
    assert out["category"] == "MSMA"
    assert out["prefs"] == ["cpu", ""] and out["scene"] == ["default", "1024"]
    assert out["help_rc"] == 0 and out["bad_rc"] == 1
    assert "error: missing.jpg: no such file or folder" in out["stderr"]
    assert out["online"] is False and "Online access is disabled" in out["install_deps"]
    assert out["torch_build"] == ["cpu", "https://download.pytorch.org/whl/cu128"]


@pytest.fixture(scope="module")
def astronaut_dir(tmp_path_factory) -> Path:
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    return folder


@pytest.mark.slow
def test_operator_on_astronaut_end_to_end(extension_zip, astronaut_dir, tmp_path):
    photo = astronaut_dir / "astronaut.png"
    script = INSTALL.format(zip=str(extension_zip), ext=EXT_MODULE) + f"""
import time
import numpy as np
s = bpy.context.scene.msma
s.source, s.image_path, s.fit, s.texture_size = "FILE", {str(photo)!r}, "fast", "256"
t0 = time.perf_counter()
out["rc1"] = sorted(bpy.ops.msma.reconstruct_face())
out["seconds"] = time.perf_counter() - t0
obj = bpy.data.objects["astronaut"]
keys = obj.data.shape_keys.key_blocks
mat = obj.data.materials[0]
img = mat.node_tree.nodes["MSMA Albedo"].image
first = dict(name=obj.name, verts=np.array([v.co[:] for v in obj.data.vertices[:50]]).tolist(),
             matrix=[list(r) for r in obj.matrix_world], mat=mat.name, keys=[k.value for k in keys])
out.update(n_keys=len(keys), key0=keys[0].name, key_names=[k.name for k in keys[1:4]],
           ranges_ok=all(k.slider_min <= k.value <= k.slider_max for k in keys[1:]),
           uv=[u.name for u in obj.data.uv_layers], image=[img.size[0], img.packed_file is not None],
           coeffs=len(obj["msma_coeffs"]), model=obj["msma_model"], cam=obj.get("msma_camera"),
           group=mat.node_tree.nodes["MSMA SH Lighting"].node_tree.name)
out["rc2"] = sorted(bpy.ops.msma.reconstruct_face())
obj = bpy.data.objects["astronaut"]
out["first_untouched"] = first == dict(name=obj.name,
                                       verts=np.array([v.co[:] for v in obj.data.vertices[:50]]).tolist(),
                                       matrix=[list(r) for r in obj.matrix_world], mat=obj.data.materials[0].name,
                                       keys=[k.value for k in obj.data.shape_keys.key_blocks])
out["faces"] = sorted(o.name for o in bpy.data.objects if o.type == "MESH" and "msma_coeffs" in o)
out["eyes"] = sorted(o.parent.name + ":" + o["msma_eye"] for o in bpy.data.objects if "msma_eye" in o)
path = {str(tmp_path / "scene.blend")!r}
bpy.ops.wm.save_as_mainfile(filepath=path)
import os
out["blend_mb"] = os.path.getsize(path) / 1e6
print(json.dumps(out))
"""
    out = run_blender(script, tmp_path)
    assert out["rc1"] == ["FINISHED"] and out["rc2"] == ["FINISHED"]
    assert out["n_keys"] == 53 and out["key0"] == "Basis"  # default head: 52 ARKit expressions
    assert out["key_names"][0].startswith(("brow", "cheek", "eye", "jaw", "mouth", "nose", "tongue"))
    assert out["ranges_ok"] and out["uv"] == ["UVMap"] and out["image"] == [256, True]
    assert out["coeffs"] > 52 and out["model"] and out["cam"] == "astronaut Camera"
    assert out["group"] == "MSMA SH Lighting"
    assert out["first_untouched"] and out["faces"] == ["astronaut", "astronaut.001"]
    assert out["eyes"] == ["astronaut.001:L", "astronaut.001:R", "astronaut:L", "astronaut:R"]
    print(f"click-to-object {out['seconds']:.1f} s, .blend {out['blend_mb']:.2f} MB")


@pytest.mark.slow
def test_command_on_folder_end_to_end(extension_zip, astronaut_dir, tmp_path):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "astronaut.png").write_bytes((astronaut_dir / "astronaut.png").read_bytes())
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(folder / "blank.png")
    out_dir = tmp_path / "out"
    script = INSTALL.format(zip=str(extension_zip), ext=EXT_MODULE) + f"""
args = ["reconstruct", {str(folder)!r}, "-o", {str(out_dir)!r}, "--fit", "fast", "--texture-size", "256"]
out["rc"] = mod._cli_command(args)
out["rc_again"] = mod._cli_command(args[:2] + [{str(folder / "astronaut.png")!r}, "-o", {str(out_dir)!r}])
out["rc_glb"] = mod._cli_command(["reconstruct", {str(folder / "astronaut.png")!r}, "-o", {str(out_dir / "a.glb")!r},
                                  "--fit", "none", "--texture-size", "128"])
print(json.dumps(out))
"""
    out = run_blender(script, tmp_path)
    assert out["rc"] == 1  # blank.png has no face; astronaut still written
    assert f"error: {folder / 'blank.png'}: " in out["stderr"]
    assert (out_dir / "astronaut.blend").is_file() and not (out_dir / "blank.blend").exists()
    assert out["rc_again"] == 1  # exists without --force
    assert f"error: {out_dir / 'astronaut.blend'}: already exists (use --force to overwrite)" in out["stderr"]
    assert out["rc_glb"] == 0 and (out_dir / "a.glb").read_bytes()[:4] == b"glTF"


def test_split_platforms_bundle_only_their_wheels(tmp_path):
    """``--split-platforms``: one zip per platform with that platform's wheels for Python 3.11
    and 3.13 (tiny stand-in wheel files with real names; the real ones are ~130 MB a zip)."""
    build = _load_build_module()
    pins = build.bundled_pins()
    assert sorted(pins) == ["opencv-python-headless", "pillow", "scipy"]  # torch is never bundled
    wheel_dir = tmp_path / "wheels"
    wheel_dir.mkdir()
    tags = {"linux-x64": "manylinux_2_28_x86_64", "windows-x64": "win_amd64", "macos-arm64": "macosx_12_0_arm64"}
    assert set(tags) == set(build.PLATFORMS)
    expected = {p: set() for p in tags}
    for platform, tag in tags.items():
        for dist, version in pins.items():
            stem = dist.replace("-", "_")
            names = [f"{stem}-{version}-cp37-abi3-{tag}.whl"] if dist.startswith("opencv") else \
                [f"{stem}-{version}-cp{py}-cp{py}-{tag}.whl" for py in ("311", "313")]
            for name in names:
                with zipfile.ZipFile(wheel_dir / name, "w") as zf:
                    zf.writestr(f"{stem}/__init__.py", "")
                expected[platform].add(name)
    # a wheel for another Python or version is not picked
    (wheel_dir / f"scipy-0.1-cp312-cp312-{tags['linux-x64']}.whl").write_bytes(b"")
    partial = tmp_path / "partial"
    partial.mkdir()
    for f in wheel_dir.iterdir():
        if not f.name.startswith(f"scipy-{pins['scipy']}-cp313-cp313-win"):
            (partial / f.name).write_bytes(f.read_bytes())
    with pytest.raises(SystemExit,
                       match=r": no wheel for scipy==[0-9.]+ \(windows-x64, Python 3\.13\) \(use --download"):
        build.bundled_wheels(partial, pins)

    zips = build.build(tmp_path / "dist", split_platforms=True, wheel_dir=wheel_dir)

    assert [z.name for z in zips] == [f"msma_face-0.1.0-{p.replace('-', '_')}.zip" for p in build.PLATFORMS]
    for platform, path in zip(build.PLATFORMS, zips):
        names = zipfile.ZipFile(path).namelist()
        bundled = {n.split("/", 1)[1] for n in names if n.startswith("wheels/") and "msma_engine" not in n}
        assert bundled == expected[platform], platform
        assert "requirements-extension.txt" in names
