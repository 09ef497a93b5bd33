"""The ``msma`` command without the engine's Python dependencies: one actionable line, exit 2.

This is what a fresh Blender prints before "Install Dependencies" ran (checked in a real
Blender 4.3 binary by scripts/check_real_blender.sh); here torch is hidden from the bpy module.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("bpy")

from msma_blender import commands, pipeline  # noqa: E402


@pytest.fixture
def without_torch(monkeypatch):
    """Make ``import torch`` fail and forget the already imported engine modules."""
    monkeypatch.setitem(sys.modules, "torch", None)
    for name in [m for m in sys.modules if m == "msma_engine" or m.startswith("msma_engine.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(pipeline, "_SESSIONS", {})


def test_command_names_missing_packages_on_one_line(without_torch, tmp_path, capsys):
    from PIL import Image

    photo = tmp_path / "face.png"
    Image.fromarray(np.full((64, 64, 3), 100, np.uint8)).save(photo)
    out = tmp_path / "out.blend"

    code = commands.main(["reconstruct", str(photo), "-o", str(out)])

    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: engine: missing Python dependencies: torch")
    assert "No module named" in lines[0] or "halted" in lines[0]
    assert "Install Dependencies" in lines[0] and "docs/BLENDER.md" in lines[0]


def test_message_gives_pip_commands_for_an_installed_extension(monkeypatch, tmp_path):
    import shlex

    from msma_blender import deps

    (tmp_path / deps.REQUIREMENTS).write_text("torch==2.13.0\nsurely-not-installed==1.0\n")
    target = tmp_path / "Blender 4.2 user" / "site-packages"  # a space, as in many user folders
    monkeypatch.setattr(deps, "_PACKAGE_DIR", tmp_path)
    monkeypatch.setattr(deps, "site_packages_dir", lambda package, create=True: target)
    monkeypatch.setitem(deps.REQUIRED_MODULES, "surely_not_installed_mod", "surely-not-installed")

    msg = commands.missing_dependencies_message(ImportError("No module named 'surely_not_installed_mod'"),
                                                package="bl_ext.user_default.msma_face")

    assert "\n" not in msg
    assert msg.startswith("missing Python dependencies: surely-not-installed")
    pasted = msg.split(" or run: ", 1)[1].split(" && ")
    pip = [shlex.split(c) for c in pasted if " -m pip " in c]
    assert len(pip) == 1 and pip[0][pip[0].index("--target") + 1] == str(target)
    assert pip[0][-2:] == ["--no-deps", "surely-not-installed==1.0"]
