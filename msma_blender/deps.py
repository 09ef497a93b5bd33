"""Python dependencies of the engine (torch, scipy, pillow, opencv) for Blender's Python.

The run-time set is :data:`REQUIRED_MODULES`; numpy is Blender's own. A per-platform build of
the extension (``build.py --split-platforms``) bundles scipy, pillow and opencv as wheels that
Blender installs itself; PyTorch is too large to bundle (hundreds of MB per platform and
Python version). The "Install Dependencies" button pip-installs whatever is missing into
the extension's user directory (``extension_path_user(..., "site-packages")``), which is
added to ``sys.path`` when the extension is enabled:

- PyTorch's CPU build by default, from PyTorch's CPU wheel index (PyPI's Linux torch is a
  CUDA build of several GB); a preference chooses a CUDA build and its index instead;
- the other packages with ``--no-deps``: their only dependency is numpy, which Blender ships
  and which must not be shadowed by a second copy.

Nothing is downloaded unless Blender's "Allow Online Access" is on.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "CPU_INDEX_URL",
    "DEFAULT_CUDA_INDEX_URL",
    "REQUIRED_MODULES",
    "TORCH",
    "InstallStep",
    "Installer",
    "OfflineError",
    "activate_site_packages",
    "command_line",
    "install_steps",
    "missing_modules",
    "pip_error",
    "pip_log_path",
    "pip_progress",
    "requirements_file",
    "run_step",
    "site_packages_dir",
]

log = logging.getLogger(__name__)

# import name -> distribution: what the engine imports at run time in Blender. opencv stays:
# warps, remapping, distance transforms, blurs and PnP in seven engine modules (align, baking,
# fitting, overlay, image_io, detect); its headless wheel is one abi3 wheel per platform.
REQUIRED_MODULES = {"torch": "torch", "scipy": "scipy", "PIL": "pillow", "cv2": "opencv-python-headless"}
TORCH = "torch"
CPU_INDEX_URL = "https://download.pytorch.org/whl/cpu"
# A CUDA build's index; the user picks the one matching the driver (pytorch.org, "Get Started").
DEFAULT_CUDA_INDEX_URL = "https://download.pytorch.org/whl/cu128"
_PACKAGE_DIR = Path(__file__).resolve().parent
REQUIREMENTS = "requirements-extension.txt"


class OfflineError(RuntimeError):
    """Blender does not allow online access, so nothing is downloaded."""


@dataclass
class InstallStep:
    """One command of the installation.

    Attributes:
        label: what the user sees while it runs (``"PyTorch (CPU)"``).
        cmd: the command line (argument list).
    """

    label: str
    cmd: list[str] = field(default_factory=list)


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


def requirements_file(package_dir: Path | None = None) -> Path:
    """The pinned requirement file shipped with the extension (build.py writes it); ``package_dir``
    defaults to the extension's folder."""
    req = (package_dir or _PACKAGE_DIR) / REQUIREMENTS
    if not req.is_file():
        raise FileNotFoundError(f"{req}: missing from the extension; rebuild it with build.py")
    return req


def _pins(req: Path) -> dict[str, str]:
    """``{distribution: requirement line}`` of a requirements file (comments skipped)."""
    pins = {}
    for line in req.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pins[re.split(r"[<>=!~\[ ;]", line, maxsplit=1)[0].lower()] = line
    return pins


def install_steps(target: Path, *, torch_build: str = "cpu", cuda_index_url: str = DEFAULT_CUDA_INDEX_URL,
                  python: str | None = None, package_dir: Path | None = None,
                  missing: list[str] | None = None, platform: str = sys.platform) -> list[InstallStep]:
    """The commands that install the missing dependencies into ``target``.

    Args:
        target: the private site-packages folder.
        torch_build: ``"cpu"`` (PyTorch's CPU wheel index) or ``"cuda"`` (``cuda_index_url``).
            On macOS PyPI's build is used either way (CPU and Metal; there is no CUDA build).
        cuda_index_url: PyTorch's wheel index for the user's CUDA version.
        python: the interpreter (default: Blender's, ``sys.executable``).
        package_dir: folder holding the requirement file (default: the extension's).
        missing: distributions to install (default :func:`missing_modules`); PyTorch is
            installed whenever it is listed, so that a CPU build can be replaced by a CUDA one.
        platform: ``sys.platform`` of the machine.

    Raises:
        FileNotFoundError: the requirement file is not in ``package_dir``.
        ValueError: unknown ``torch_build``, or a missing distribution without a pin.
    """
    if torch_build not in ("cpu", "cuda"):
        raise ValueError(f"torch_build: expected 'cpu' or 'cuda', got {torch_build!r}")
    python = python or sys.executable
    req = requirements_file(package_dir)
    pins = _pins(req)
    missing = missing_modules() if missing is None else missing
    unpinned = [d for d in missing if d not in pins]
    if unpinned:
        raise ValueError(f"{req}: no pin for {', '.join(unpinned)}")
    base = [python, "-m", "pip", "install", "--disable-pip-version-check", "--upgrade", "--target", str(target)]
    steps = []
    if importlib.util.find_spec("pip") is None:  # Blender's Python ships pip; bootstrap it when not
        steps.append(InstallStep("pip", [python, "-m", "ensurepip", "--user"]))
    others = [pins[d] for d in missing if d != TORCH]
    if others:
        steps.append(InstallStep(", ".join(d for d in missing if d != TORCH), base + ["--no-deps", *others]))
    if TORCH in missing:
        if platform == "darwin":
            steps.append(InstallStep("PyTorch", base + [pins[TORCH]]))
        else:
            url = CPU_INDEX_URL if torch_build == "cpu" else cuda_index_url
            steps.append(InstallStep(f"PyTorch ({torch_build.upper()})", base + ["--index-url", url, pins[TORCH]]))
    return steps


def command_line(cmds: list[list[str]], platform: str = sys.platform) -> str:
    """Commands as one line a user can paste into a shell (``&&``-joined, quoted for it)."""
    join = subprocess.list2cmdline if platform == "win32" else shlex.join
    return " && ".join(join(c) for c in cmds)


def pip_log_path(package: str) -> Path:
    """Where pip's output goes (a file, so a long install cannot fill a pipe and stall)."""
    return site_packages_dir(package, create=True).parent / "pip-install.log"


def run_step(step: InstallStep, log_file: Path) -> subprocess.Popen:
    """Start one step, appending its command line and output to ``log_file``."""
    log.info("running %s", command_line([step.cmd]))
    with open(log_file, "a") as fh:
        fh.write(f"$ {command_line([step.cmd])}\n")
        fh.flush()
        return subprocess.Popen(step.cmd, stdout=fh, stderr=subprocess.STDOUT)


_NOISE = re.compile(r"^(WARNING|DEPRECATION|\[notice\]|\s*$|\$ )", re.I)
_PROGRESS = re.compile(r"^\s*(Collecting|Downloading|Installing collected packages|Successfully installed)\s*(.*)")


def pip_error(log_text: str, lines: int = 3) -> str:
    """The last meaningful lines of pip's output: its ``ERROR:`` lines when there are any
    (with the line before the first, which often names the requirement), else the last lines
    that are not warnings or notices. Joined with ``" | "``."""
    text = [ln.rstrip() for ln in log_text.splitlines()]
    errors = [i for i, ln in enumerate(text) if ln.lstrip().startswith("ERROR")]
    if errors:
        first = errors[0]
        picked = [text[first - 1]] if first > 0 and not _NOISE.match(text[first - 1]) else []
        picked += [text[i] for i in errors]
        return " | ".join(ln.strip() for ln in picked[-lines:])
    meaningful = [ln.strip() for ln in text if not _NOISE.match(ln)]
    return " | ".join(meaningful[-lines:])


def pip_progress(log_text: str) -> str:
    """The latest progress line of pip's output, shortened (``"Downloading torch-2.13.0...whl (190 MB)"``)."""
    for ln in reversed(log_text.splitlines()):
        m = _PROGRESS.match(ln)
        if m:
            what = m.group(2).strip().lstrip(": ")
            if "/" in what and " " in what:  # "https://.../torch-...whl (190.2 MB)" -> file name and size
                url, _, size = what.partition(" ")
                what = f"{url.rsplit('/', 1)[-1]} {size}"
            elif "/" in what:
                what = what.rsplit("/", 1)[-1]
            return f"{m.group(1)} {what}"[:120]
    return ""


class Installer:
    """Runs install steps one after the other without blocking; the caller polls it.

    Args:
        steps: the commands (:func:`install_steps`).
        log_file: pip's output of every step goes there (truncated first).
        online_access: Blender's "Allow Online Access".

    Attributes:
        error: None, or the reason of the first failed step (pip's last meaningful lines).
        done: True when every step ran or one failed.

    Raises:
        OfflineError: when online access is off (nothing runs).
    """

    def __init__(self, steps: list[InstallStep], log_file: Path, *, online_access: bool):
        if not online_access:
            raise OfflineError("Online access is disabled: enable it in Preferences > System > Network "
                               "(\"Allow Online Access\"), or install the packages manually (see docs/BLENDER.md)")
        self.steps, self.log_file = list(steps), Path(log_file)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.write_text("")
        self.index, self.error, self.done = 0, None, not self.steps
        self._proc = run_step(self.steps[0], self.log_file) if self.steps else None

    def poll(self) -> bool:
        """Check the running step; start the next one when it succeeded. True when done."""
        if self.done or self._proc.poll() is None:
            return self.done
        if self._proc.returncode != 0:
            reason = pip_error(self.log_file.read_text(errors="replace")) or f"exit status {self._proc.returncode}"
            self.error = f"{self.steps[self.index].label}: {reason}"
            self.done = True
        elif self.index + 1 < len(self.steps):
            self.index += 1
            self._proc = run_step(self.steps[self.index], self.log_file)
        else:
            self.done = True
        return self.done

    def wait(self) -> None:
        """Block until done (background mode)."""
        while not self.poll():
            self._proc.wait()

    def cancel(self) -> None:
        """Stop the running step (pip leaves the target as it was or partly written)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
        self.error, self.done = self.error or "cancelled", True

    @property
    def fraction(self) -> float:
        """Steps finished / steps, for a progress bar."""
        return 1.0 if not self.steps else (self.index + (1 if self.done and not self.error else 0)) / len(self.steps)

    @property
    def status(self) -> str:
        """One line for the UI: the step, its number and pip's latest progress line."""
        if not self.steps:
            return "Nothing to install"
        head = f"{self.steps[self.index].label} ({self.index + 1}/{len(self.steps)})"
        try:
            latest = pip_progress(self.log_file.read_text(errors="replace"))
        except OSError:
            latest = ""
        return f"{head}: {latest}" if latest else head
