"""Dependency installer: pip command lines, the online-access gate, site-packages activation."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("bpy")

from msma_blender import deps  # noqa: E402


def test_install_commands(tmp_path):
    (tmp_path / deps.REQUIREMENTS).write_text("torch==2.13.0\n")
    (tmp_path / deps.REQUIREMENTS_NODEPS).write_text("mediapipe==0.10.21\n")
    target = tmp_path / "site-packages"
    cmds = deps.install_commands(target, python="/blender/python", package_dir=tmp_path)
    pip = [c for c in cmds if "pip" in c]
    assert len(pip) == 2
    assert pip[0][:3] == ["/blender/python", "-m", "pip"] and ["--target", str(target)] == pip[0][6:8]
    assert pip[0][-2:] == ["-r", str(tmp_path / deps.REQUIREMENTS)]
    assert "--no-deps" in pip[1] and pip[1][-1] == str(tmp_path / deps.REQUIREMENTS_NODEPS)


def test_missing_requirement_file_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="rebuild it with build.py"):
        deps.install_commands(tmp_path, package_dir=tmp_path)


def test_offline_refuses_before_anything_runs():
    with pytest.raises(deps.OfflineError, match="Allow Online Access"):
        deps.start_install("bl_ext.user_default.msma_face", online_access=False)


def test_activation_outside_an_extension_is_a_no_op():
    before = list(sys.path)
    assert deps.activate_site_packages("msma_blender") is None
    assert sys.path == before


def test_missing_modules_lists_distribution_names(monkeypatch):
    monkeypatch.setitem(deps.REQUIRED_MODULES, "surely_not_installed_mod", "surely-not-installed")
    assert "surely-not-installed" in deps.missing_modules()
    assert "torch" not in deps.missing_modules()
