"""Dependency installer: pip command lines (CPU PyTorch by default), the online-access gate,
the installer's steps, progress and real pip errors, site-packages activation."""

from __future__ import annotations

import shlex
import sys

import pytest

pytest.importorskip("bpy")

from msma_blender import deps  # noqa: E402

PINS = "torch==2.13.0\nscipy==1.17.1\npillow==13.0.0\nopencv-python-headless==4.10.0.84\n"


@pytest.fixture
def package_dir(tmp_path):
    (tmp_path / deps.REQUIREMENTS).write_text("# pins\n" + PINS)
    return tmp_path


def _pip_steps(steps):
    return [s for s in steps if s.cmd[1:3] == ["-m", "pip"]]


def test_cpu_torch_by_default_and_others_without_numpy(package_dir, tmp_path):
    target = tmp_path / "site-packages"
    steps = _pip_steps(deps.install_steps(target, python="/blender/python", package_dir=package_dir,
                                          missing=["torch", "scipy", "pillow", "opencv-python-headless"],
                                          platform="linux"))
    assert [s.label for s in steps] == ["scipy, pillow, opencv-python-headless", "PyTorch (CPU)"]
    others, torch = (s.cmd for s in steps)
    assert others[:3] == ["/blender/python", "-m", "pip"] and ["--target", str(target)] == others[6:8]
    # numpy is Blender's: the numpy-dependent packages are installed without their dependencies
    assert "--no-deps" in others and others[-3:] == ["scipy==1.17.1", "pillow==13.0.0",
                                                     "opencv-python-headless==4.10.0.84"]
    assert not any("numpy" in a for s in steps for a in s.cmd)
    assert torch[-3:] == ["--index-url", deps.CPU_INDEX_URL, "torch==2.13.0"] and "--no-deps" not in torch


def test_cuda_choice_uses_its_index_and_macos_uses_pypi(package_dir, tmp_path):
    url = "https://download.pytorch.org/whl/cu126"
    (cuda,) = deps.install_steps(tmp_path, torch_build="cuda", cuda_index_url=url, python="py",
                                 package_dir=package_dir, missing=["torch"], platform="win32")[-1:]
    assert cuda.label == "PyTorch (CUDA)" and cuda.cmd[-3:] == ["--index-url", url, "torch==2.13.0"]
    (mac,) = deps.install_steps(tmp_path, torch_build="cuda", python="py", package_dir=package_dir,
                                missing=["torch"], platform="darwin")[-1:]
    assert mac.cmd[-1] == "torch==2.13.0" and "--index-url" not in mac.cmd
    with pytest.raises(ValueError, match="'rocm'"):
        deps.install_steps(tmp_path, torch_build="rocm", package_dir=package_dir, missing=["torch"])


def test_only_missing_packages_are_installed(package_dir, tmp_path):
    # e.g. a per-platform zip whose bundled wheels gave scipy, pillow and opencv
    steps = _pip_steps(deps.install_steps(tmp_path, python="py", package_dir=package_dir, missing=["torch"]))
    assert len(steps) == 1 and steps[0].cmd[-1] == "torch==2.13.0"
    assert _pip_steps(deps.install_steps(tmp_path, python="py", package_dir=package_dir, missing=[])) == []


def test_missing_requirement_file_or_pin_is_reported(package_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="rebuild it with build.py"):
        deps.install_steps(tmp_path, package_dir=tmp_path / "nowhere", missing=["torch"])
    with pytest.raises(ValueError, match="no pin for mediapipe"):
        deps.install_steps(tmp_path, package_dir=package_dir, missing=["mediapipe"])


def test_command_line_is_shell_quoted():
    target = "/home/a user/Blender 4.2/extensions/.user/user_default/msma_face/site-packages"
    cmds = [["/opt/blender 4.2/python/bin/python3.11", "-m", "pip", "install", "--target", target, "torch==2.13.0"],
            ["py", "-c", "print('x')"]]
    line = deps.command_line(cmds, platform="linux")
    first, second = line.split(" && ")
    assert shlex.split(first) == cmds[0] and shlex.split(second) == cmds[1]
    win = deps.command_line([[r"C:\Program Files\Blender\python.exe", "-m", "pip"]], platform="win32")
    assert win == r'"C:\Program Files\Blender\python.exe" -m pip'


def test_runtime_set_is_small_and_has_no_mediapipe():
    assert set(deps.REQUIRED_MODULES.values()) == {"torch", "scipy", "pillow", "opencv-python-headless"}


def test_missing_modules_lists_distribution_names(monkeypatch):
    monkeypatch.setitem(deps.REQUIRED_MODULES, "surely_not_installed_mod", "surely-not-installed")
    assert "surely-not-installed" in deps.missing_modules()
    assert "torch" not in deps.missing_modules()


PIP_FAILURE = """\
$ python -m pip install --target t mediapipe==0.10.21
Collecting torch==2.13.0
  Downloading https://download.pytorch.org/whl/cpu/torch-2.13.0%2Bcpu-cp313-cp313-manylinux_2_28_x86_64.whl (190.2 MB)
WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after connection broken
Collecting mediapipe==0.10.21
ERROR: Could not find a version that satisfies the requirement mediapipe==0.10.21 (from versions: 0.10.30, 1.2.3)
ERROR: No matching distribution found for mediapipe==0.10.21

[notice] A new release of pip is available: 24.0 -> 25.3
[notice] To update, run: python -m pip install --upgrade pip
WARNING: You are using pip version 24.0; however, version 25.3 is available.
"""


def test_pip_error_is_the_real_error_not_a_warning():
    err = deps.pip_error(PIP_FAILURE)
    assert err == ("Collecting mediapipe==0.10.21 | ERROR: Could not find a version that satisfies the requirement "
                   "mediapipe==0.10.21 (from versions: 0.10.30, 1.2.3) | ERROR: No matching distribution found "
                   "for mediapipe==0.10.21")
    log = "WARNING: something\nbuild failed: no compiler\nWARNING: again\n"
    assert deps.pip_error(log) == "build failed: no compiler"


def test_pip_progress_names_the_file_and_its_size():
    assert deps.pip_progress(PIP_FAILURE) == "Collecting mediapipe==0.10.21"
    head = PIP_FAILURE.split("WARNING")[0]
    assert deps.pip_progress(head) == "Downloading torch-2.13.0%2Bcpu-cp313-cp313-manylinux_2_28_x86_64.whl (190.2 MB)"
    assert deps.pip_progress("Installing collected packages: scipy, pillow\n") == \
        "Installing collected packages scipy, pillow"
    assert deps.pip_progress("") == ""


def _step(label, code):
    return deps.InstallStep(label, [sys.executable, "-c", code])


def test_installer_runs_steps_in_order_and_stops_at_the_real_error(tmp_path):
    log = tmp_path / "logs" / "pip-install.log"
    ok = "print('Collecting scipy==1.17.1'); print('Successfully installed scipy-1.17.1')"
    bad = ("import sys; print('WARNING: a warning'); print('Collecting torch==9.9'); "
           "print('ERROR: No matching distribution found for torch==9.9'); "
           "print('WARNING: pip is old'); sys.exit(1)")
    never = "open(r'%s', 'w').write('ran')" % (tmp_path / "third_ran")
    inst = deps.Installer([_step("scipy", ok), _step("PyTorch (CPU)", bad), _step("never", never)], log,
                          online_access=True)
    assert not inst.done and inst.status.startswith("scipy (1/3)")
    inst.wait()
    assert inst.done and inst.index == 1 and inst.fraction == pytest.approx(1 / 3)
    assert inst.error == "PyTorch (CPU): Collecting torch==9.9 | ERROR: No matching distribution found for torch==9.9"
    assert not (tmp_path / "third_ran").exists()
    assert "Successfully installed scipy-1.17.1" in log.read_text()


def test_installer_success_and_status(tmp_path):
    inst = deps.Installer([_step("pillow", "print('Successfully installed pillow-13.0.0')")],
                          tmp_path / "pip.log", online_access=True)
    inst.wait()
    assert inst.error is None and inst.fraction == 1.0
    assert inst.status == "pillow (1/1): Successfully installed pillow-13.0.0"


def test_offline_refuses_before_anything_runs(tmp_path):
    with pytest.raises(deps.OfflineError, match="Allow Online Access"):
        deps.Installer([_step("x", "open(r'%s', 'w')" % (tmp_path / "ran"))], tmp_path / "log", online_access=False)
    assert not (tmp_path / "ran").exists()


def test_activation_outside_an_extension_is_a_no_op():
    before = list(sys.path)
    assert deps.activate_site_packages("msma_blender") is None
    assert sys.path == before


def test_installer_reports_real_pips_error(tmp_path):
    """pip itself (offline: --no-index), asked for a package that does not exist."""
    step = deps.InstallStep("surely-not-a-package", [sys.executable, "-m", "pip", "install", "--no-index",
                                                     "--disable-pip-version-check", "--target", str(tmp_path / "t"),
                                                     "surely-not-a-package==1.0"])
    inst = deps.Installer([step], tmp_path / "pip.log", online_access=True)
    inst.wait()
    assert inst.error.startswith("surely-not-a-package: ")
    assert "ERROR: No matching distribution found for surely-not-a-package==1.0" in inst.error
    assert "WARNING" not in inst.error
