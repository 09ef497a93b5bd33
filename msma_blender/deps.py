"""Python dependencies of the engine (torch, scipy, mediapipe, ...) for Blender's Python.

They are not bundled in the extension zip (hundreds of MB, per platform). The
"Install Dependencies" button pip-installs the pinned requirements shipped in the zip
into the extension's user directory (``extension_path_user(..., "site-packages")``), which
is added to ``sys.path`` when the extension is enabled. Blender's own numpy is used.
Nothing is downloaded unless Blender's "Allow Online Access" is on.
"""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
from pathlib import Path

__all__ = [
    "REQUIRED_MODULES",
    "OfflineError",
    "activate_site_packages",
    "install_commands",
    "missing_modules",
    "requirement_files",
    "site_packages_dir",
    "log_tail",
    "pip_log_path",
    "run_next",
    "start_install",
]

log = logging.getLogger(__name__)

# import name -> what to tell the user.
REQUIRED_MODULES = {"torch": "torch", "scipy": "scipy", "PIL": "pillow", "cv2": "opencv-python-headless",
                    "mediapipe": "mediapipe", "skimage": "scikit-image"}
_PACKAGE_DIR = Path(__file__).resolve().parent
REQUIREMENTS = "requirements-extension.txt"
REQUIREMENTS_NODEPS = "requirements-extension-nodeps.txt"


class OfflineError(RuntimeError):
    """Blender does not allow online access, so nothing is downloaded."""


def site_packages_dir(package: str, create: bool = True) -> Path:
    """The extension's private ``site-packages`` folder in Blender's user directory."""
    import bpy

    return Path(bpy.utils.extension_path_user(package, path="site-packages", create=create))


def activate_site_packages(package: str) -> Path | None:
    """Append the private ``site-packages`` to ``sys.path`` (after Blender's own paths, so
    Blender's numpy wins). Returns it, or None when it does not exist yet."""
    try:
        path = site_packages_dir(package, create=False)
    except ValueError:  # not installed as an extension (e.g. ``python -m msma_blender`` from a checkout)
        return None
    if not path.is_dir():
        return None
    if str(path) not in sys.path:
        sys.path.append(str(path))
        importlib.invalidate_caches()
    return path


def missing_modules() -> list[str]:
    """Distribution names of the required modules that cannot be imported."""
    return [dist for mod, dist in REQUIRED_MODULES.items() if importlib.util.find_spec(mod) is None]


def requirement_files(package_dir: Path = _PACKAGE_DIR) -> tuple[Path, Path | None]:
    """The pinned requirement files shipped with the extension (build.py writes them)."""
    req = package_dir / REQUIREMENTS
    if not req.is_file():
        raise FileNotFoundError(f"{req}: missing from the extension; rebuild it with build.py")
    nodeps = package_dir / REQUIREMENTS_NODEPS
    return req, nodeps if nodeps.is_file() else None


def install_commands(target: Path, python: str | None = None,
                     package_dir: Path = _PACKAGE_DIR) -> list[list[str]]:
    """The pip command lines that install the requirements into ``target``.

    Args:
        target: the private site-packages folder.
        python: the interpreter (default: Blender's, ``sys.executable``).
        package_dir: folder holding the requirement files.
    """
    python = python or sys.executable
    req, nodeps = requirement_files(package_dir)
    base = [python, "-m", "pip", "install", "--disable-pip-version-check", "--upgrade", "--target", str(target)]
    # Blender's Python usually ships pip; bootstrap it (user-level) when it does not.
    cmds = [] if importlib.util.find_spec("pip") is not None else [[python, "-m", "ensurepip", "--user"]]
    cmds.append(base + ["-r", str(req)])
    if nodeps is not None:
        cmds.append(base + ["--no-deps", "-r", str(nodeps)])
    return cmds


def start_install(package: str, online_access: bool) -> tuple[subprocess.Popen, list[list[str]]]:
    """Start pip for the first command; the caller polls it and runs the rest (see operators).

    Raises:
        OfflineError: when Blender does not allow online access.
    """
    if not online_access:
        raise OfflineError("Online access is disabled: enable it in Preferences > System > Network "
                           "(\"Allow Online Access\"), or install the packages manually (see the README)")
    target = site_packages_dir(package, create=True)
    cmds = install_commands(target)
    log.info("installing dependencies into %s", target)
    pip_log_path(package).write_text("")
    return run_next(package, cmds[0]), cmds[1:]


def pip_log_path(package: str) -> Path:
    """Where pip's output goes (a file, so a long install cannot fill a pipe and stall)."""
    return site_packages_dir(package, create=True).parent / "pip-install.log"


def log_tail(package: str, lines: int = 3) -> str:
    """The last lines of pip's log, for an error message."""
    try:
        text = pip_log_path(package).read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(text.strip().splitlines()[-lines:])


def run_next(package: str, cmd: list[str]) -> subprocess.Popen:
    """Start one pip command, appending its output to :func:`pip_log_path`."""
    with open(pip_log_path(package), "a") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
