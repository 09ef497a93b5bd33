"""Build the installable Blender extension zip and validate it with Blender's own tool.

    python build.py [--output-dir dist] [--blender-ext PATH]

Layout of the zip (``msma_face-<version>.zip``)::

    __init__.py, operators.py, ...       the msma_blender package (the extension root)
    blender_manifest.toml                 the repository's manifest + a ``wheels`` entry
    wheels/msma_engine-<v>-py3-none-any.whl   the Blender-free engine, with its data (default head)
    assets/*.pt                           network weights, if any are placed in assets/
    requirements-extension*.txt           pinned packages for the "Install Dependencies" button

The engine ships as a pure-Python wheel: Blender installs an extension's wheels into its
shared extension site-packages when the extension is enabled and removes them when it is
uninstalled, so ``import msma_engine`` works without the repository on ``sys.path``. Its heavy
dependencies (torch, scipy, mediapipe, ...) are not bundled; see README "Blender".

The validator is ``blender_ext.py`` from the ``bpy`` wheel (or a Blender install), run
with this Python; no Blender binary is needed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PACKAGE_DIR = ROOT / "msma_blender"
ENGINE_DIR = ROOT / "msma_engine"
ASSETS = ROOT / "assets"
MANIFEST = ROOT / "blender_manifest.toml"
# Not needed by the extension at run time (Blender ships numpy; the rest is for development
# or, like anny, only for rebuilding the default head).
EXCLUDED_REQUIREMENTS = {"bpy", "numpy", "pytest", "matplotlib", "anny"}
WHEEL_NAME = "msma_engine"


def find_blender_ext() -> Path:
    """``blender_ext.py`` inside the installed ``bpy`` wheel."""
    import importlib.util

    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("error: bpy: not installed; pass --blender-ext PATH/TO/blender_ext.py")
    base = Path(list(spec.submodule_search_locations)[0])
    found = sorted(base.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise SystemExit(f"error: {base}: no */scripts/addons_core/bl_pkg/cli/blender_ext.py inside")
    return found[-1]


def _python_files(src: Path) -> list[Path]:
    return sorted(p for p in src.rglob("*.py") if "__pycache__" not in p.parts)


def _package_data(src: Path) -> list[Path]:
    """The engine's data files (default head model, converted landmarker weights, licences)."""
    data = src / "data"
    return sorted(p for p in data.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc"))


def build_engine_wheel(out_dir: Path, version: str) -> Path:
    """A ``py3-none-any`` wheel holding ``msma_engine/`` (Python files only), with a valid RECORD."""
    dist_info = f"{WHEEL_NAME}-{version}.dist-info"
    path = out_dir / f"{WHEEL_NAME}-{version}-py3-none-any.whl"
    files: dict[str, bytes] = {}
    for src in _python_files(ENGINE_DIR) + _package_data(ENGINE_DIR):
        files[src.relative_to(ROOT).as_posix()] = src.read_bytes()
    files[f"{dist_info}/METADATA"] = (f"Metadata-Version: 2.1\nName: {WHEEL_NAME}\nVersion: {version}\n"
                                      "Summary: MSMA single-photo 3D face reconstruction engine\n"
                                      "License: GPL-3.0-or-later\n").encode()
    files[f"{dist_info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: msma-blender build.py\n"
                                   b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    files[f"{dist_info}/top_level.txt"] = b"msma_engine\n"
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    out_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            # Fixed timestamps: the same sources give the same wheel.
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


def extension_requirements(text: str) -> str:
    """``requirements.txt`` without the development-only and Blender-provided packages."""
    keep = []
    for line in text.splitlines():
        name = re.split(r"[<>=!~\[ ;]", line.strip(), maxsplit=1)[0].lower()
        if line.strip() and not line.lstrip().startswith("#") and name not in EXCLUDED_REQUIREMENTS:
            keep.append(line.strip())
    return "\n".join(keep) + "\n"


def manifest_with_wheels(text: str, wheels: list[str]) -> str:
    """Insert a top-level ``wheels = [...]`` before the first table of the manifest."""
    entry = "wheels = [" + ", ".join(f'"./wheels/{w}"' for w in wheels) + "]\n\n"
    match = re.search(r"^\[", text, flags=re.M)
    return text[:match.start()] + entry + text[match.start():] if match else text + "\n" + entry


def stage(staging: Path) -> None:
    """Assemble the extension's files in ``staging``."""
    version = tomllib.loads(MANIFEST.read_text())["version"]
    for src in _python_files(PACKAGE_DIR):
        dst = staging / src.relative_to(PACKAGE_DIR)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    wheel = build_engine_wheel(staging / "wheels", version)
    (staging / "blender_manifest.toml").write_text(manifest_with_wheels(MANIFEST.read_text(), [wheel.name]))
    if not (ENGINE_DIR / "data" / "default_head.npz").is_file():
        raise SystemExit(f"error: {ENGINE_DIR / 'data' / 'default_head.npz'}: missing (build the default head first)")
    (staging / "assets").mkdir()
    for weights in sorted(ASSETS.glob("*.pt")):
        shutil.copy2(weights, staging / "assets" / weights.name)
    (staging / "requirements-extension.txt").write_text(
        extension_requirements((ROOT / "requirements.txt").read_text()))
    nodeps = ROOT / "requirements-nodeps.txt"
    if nodeps.is_file():
        (staging / "requirements-extension-nodeps.txt").write_text(extension_requirements(nodeps.read_text()))


def build(output_dir: Path, blender_ext: Path | None = None) -> Path:
    """Stage, build with ``blender_ext.py build`` and check with ``blender_ext.py validate``.

    Returns:
        The zip path.
    """
    blender_ext = blender_ext or find_blender_ext()
    manifest = tomllib.loads(MANIFEST.read_text())
    output_dir = output_dir.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    zip_path = output_dir / f"{manifest['id']}-{manifest['version']}.zip"
    with tempfile.TemporaryDirectory(prefix="msma_ext_") as tmp:
        staging = Path(tmp) / manifest["id"]
        staging.mkdir()
        stage(staging)
        if zip_path.exists():
            zip_path.unlink()
        subprocess.run([sys.executable, str(blender_ext), "build", "--source-dir", str(staging),
                        "--output-filepath", str(zip_path)], check=True)
    subprocess.run([sys.executable, str(blender_ext), "validate", str(zip_path)], check=True)
    return zip_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist", help="where the zip goes (default dist/)")
    parser.add_argument("--blender-ext", type=Path, help="blender_ext.py (default: the one in the bpy wheel)")
    args = parser.parse_args(argv)
    try:
        path = build(args.output_dir, args.blender_ext)
    except subprocess.CalledProcessError as err:
        print(f"error: {err.cmd[1]}: failed with exit status {err.returncode}", file=sys.stderr)
        return 1
    print(f"built {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
