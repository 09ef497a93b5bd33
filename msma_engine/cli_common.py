"""The reconstruct command surface shared by ``python -m msma_engine`` and the Blender command.

One place for: the common arguments (inputs, ``-o``, model, weights, fit, texture size,
face, device, ``--force``), the expansion of files and folders into photos (natural
order: ``frame2`` before ``frame10``), output stems, the output-folder check done before
any work, the ``error: <file>: <reason>`` lines, the exit codes, the fit-preset names and
the threading policy set before torch loads.

Only the standard library is imported here: the Blender extension uses this module
before its Python dependencies are installed.
"""

from __future__ import annotations

import argparse
import enum
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from msma_engine.errors import UsageError

__all__ = [
    "ExitCode",
    "FIT_CHOICES",
    "IMAGE_SUFFIXES",
    "add_reconstruct_arguments",
    "collect_inputs",
    "error_line",
    "face_choice",
    "natural_key",
    "prepare_output_dir",
    "print_error",
    "resolve_fit",
    "set_thread_policy",
    "shell_join",
    "texture_size",
    "unique_stems",
]


class ExitCode(enum.IntEnum):
    """Exit status of the command-line programs."""

    OK = 0
    """Every input worked (or its outputs were already complete)."""
    FAILED = 1
    """At least one input failed; the others were still written."""
    USAGE = 2
    """Unusable arguments, output folder, model or weights: nothing was processed."""
    INTERRUPTED = 130
    """Stopped by Ctrl-C (128 + SIGINT); files already committed are complete."""


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")
"""File types picked up from a folder (files named explicitly are tried whatever their suffix)."""

FIT_CHOICES = ("fast", "default", "none")
"""``--fit`` values; ``"none"`` means no test-time fitting (see :func:`resolve_fit`)."""


def set_thread_policy() -> None:
    """Let idle OpenMP threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``).

    Must run before torch is imported; a value the user set is kept. Spinning threads
    halve the speed on a loaded machine (22 s against 11 s for the README's command on a
    busy 2-core machine).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def resolve_fit(name: str | None) -> str | None:
    """A ``--fit`` value → the engine's ``fit=`` argument (``"none"`` and None → None).

    Raises:
        UsageError: an unknown preset name.
    """
    if name is None or name == "none":
        return None
    if name not in FIT_CHOICES:
        raise UsageError(f"--fit must be one of {', '.join(FIT_CHOICES)}, got {name!r}")
    return name


def face_choice(text: str) -> str | int:
    """``--face`` value: ``"largest"``, ``"only"``, ``"all"`` or a face number (argparse type)."""
    if text in ("largest", "all", "only"):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--face must be 'largest', 'all', 'only' or a face number, got {text!r}") from None


def texture_size(text: str) -> int:
    """``--texture-size`` value: an integer within 64-4096 (argparse type)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--texture-size must be an integer, got {text!r}") from None
    if not 64 <= n <= 4096:
        raise argparse.ArgumentTypeError(f"--texture-size must be within 64-4096, got {n}")
    return n


def weights_arg(value: str) -> Path | None:
    """``--weights`` value: a file, or ``none`` for the path without a network."""
    return None if value.strip().lower() == "none" else Path(value)


def add_reconstruct_arguments(parser: argparse.ArgumentParser, output_help: str) -> None:
    """Add the arguments every reconstruct command takes; callers add their own extras."""
    parser.add_argument("inputs", nargs="+", type=Path, metavar="PHOTO|FOLDER",
                        help="image files and/or folders of images (sorted naturally: frame2 before frame10)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help=output_help)
    parser.add_argument("--model", type=Path, metavar="NPZ", help="face-model file (default: the shipped head)")
    parser.add_argument("--weights", type=weights_arg, metavar="PT|none",
                        help="network weights; 'none' (the default) = no network: the fit starts from the mean "
                             "face posed on the landmarks, the path that uses no weights trained on "
                             "research-only photo sets")
    parser.add_argument("--fit", choices=FIT_CHOICES, default="default",
                        help="test-time fitting effort; 'none': the start point only (default: %(default)s)")
    parser.add_argument("--texture-size", type=texture_size, default=1024, metavar="N",
                        help="albedo texture side in texels, 64-4096 (default: %(default)s)")
    parser.add_argument("--face", type=face_choice, default="largest", metavar="largest|only|all|N",
                        help="which face: the largest, the only one, all, or a number counted left to right "
                             "from 0 (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")


def natural_key(path: str | Path) -> list:
    """Sort key of a file name so that ``frame2`` comes before ``frame10`` (case-insensitive)."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", Path(path).name)]


def collect_inputs(inputs: list[str | Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Expand files and folders into the photos to process.

    A folder contributes its image files (:data:`IMAGE_SUFFIXES`, hidden files skipped,
    natural order, no sub-folders); a file named explicitly is kept whatever its suffix
    (the image loader says why it cannot be read). Duplicates (same resolved file) are
    dropped.

    Returns:
        ``(photos, problems)``: photos in order; ``(input, reason)`` for every input that
        does not exist or is a folder without images.
    """
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []
    for raw in inputs:
        item = Path(raw).expanduser()
        if item.is_dir():
            found = sorted((p for p in item.iterdir() if p.is_file() and not p.name.startswith(".")
                            and p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
            if not found:
                problems.append((item, f"folder holds no images ({', '.join(IMAGE_SUFFIXES)})"))
            files.extend(found)
        elif item.exists():
            files.append(item)
        else:
            problems.append((item, "no such file or folder"))
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, problems


def unique_stems(files: list[Path]) -> dict[Path, str]:
    """Output stem per photo: its file stem, plus its suffix when two photos share a stem.

    ``a.jpg`` and ``a.png`` become ``a_jpg`` and ``a_png``.

    Raises:
        UsageError: two photos would still get one name (same file name in two folders),
            so one run would overwrite the other's outputs.
    """
    counts: dict[str, int] = {}
    for f in files:
        counts[f.stem] = counts.get(f.stem, 0) + 1
    stems = {f: f.stem if counts[f.stem] == 1 else f"{f.stem}_{f.suffix.lstrip('.').lower()}" for f in files}
    owner: dict[str, Path] = {}
    for f, stem in stems.items():
        if stem in owner:
            raise UsageError(f"{owner[stem]} and {f} would both be written as {stem!r}; "
                             "rename one or use separate runs and output folders")
        owner[stem] = f
    return stems


def prepare_output_dir(path: Path) -> Path:
    """Create the output folder and check that files can be written there, before any work.

    Raises:
        UsageError: ``path`` is a file, cannot be created, or is not writable.
    """
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path}: output exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise UsageError(f"{path}: output folder cannot be created or written ({exc.strerror or exc})") from None
    return path


def error_line(path: str | Path, reason: object) -> str:
    """``"<path>: <reason>"``, without repeating the path where the message names it already."""
    if isinstance(reason, OSError) and reason.strerror:
        text = f"{reason.filename}: {reason.strerror}" if reason.filename else reason.strerror
    else:
        text = str(reason)
    path = str(path)
    for prefix in (f"{path}: ", f"{Path(path).name}: "):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    text = text.replace(f" in {path}", "")
    return f"{path}: {text}"


def print_error(path: str | Path | None, reason: object, write=None) -> None:
    """Print one ``error: <path>: <reason>`` line (``error: <reason>`` without a path) on stderr.

    Args:
        write: a ``print``-like callable taking ``file=`` (e.g. ``tqdm.write``); default ``print``.
    """
    line = f"error: {error_line(path, reason) if path is not None else reason}"
    (write or print)(line, file=sys.stderr)


def shell_join(cmd: list[str]) -> str:
    """One command line, quoted for this platform's shell (paths with spaces survive a paste)."""
    return subprocess.list2cmdline(cmd) if os.name == "nt" else shlex.join(cmd)
