"""Build the installable Blender extension zip(s) and validate them with Blender's own tool.

    python build.py [--output-dir dist] [--blender-ext PATH]               # one zip, every platform
    python build.py --split-platforms [--download-wheels] [--wheel-dir DIR] # one zip per platform

Layout of the zip (``msma_face-<version>.zip``)::

    __init__.py, operators.py, ...       the msma_blender package (the extension root)
    blender_manifest.toml                 the repository's manifest + a ``wheels`` entry
    wheels/msma_engine-<v>-py3-none-any.whl   the Blender-free engine, with its data (default head)
    assets/*.pt                           network weights, if any are placed in assets/
    requirements-extension.txt            pinned run-time packages for the "Install Dependencies" button

The engine ships as a pure-Python wheel: Blender installs an extension's wheels into its
shared extension site-packages when the extension is enabled and removes them when it is
uninstalled, so ``import msma_engine`` works without the repository on ``sys.path``.

With ``--split-platforms`` (``msma_face-<version>-<platform>.zip``, one per entry of
:data:`PLATFORMS`) the zips also bundle the wheels of scipy, pillow and opencv-python-headless
for that platform and for Blender's two Pythons (3.11: Blender 4.2-5.0; 3.13: 5.1-5.2);
Blender installs the ones matching its Python. ``--download-wheels`` fetches them with
``pip download`` into ``--wheel-dir`` (default ``build/wheels``) first. PyTorch is never
bundled (a few hundred MB per platform and Python even for the CPU build):
"Install Dependencies" downloads it. numpy is Blender's own.

The validator is ``blender_ext.py`` from the ``bpy`` wheel (or a Blender install), run
with this Python; no Blender binary is needed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.util
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
WHEEL_NAME = "msma_engine"
# Blender platform -> pip ``--platform`` tags, most preferred first (Blender 4.2+ needs glibc 2.28
# and macOS 11.2; Blender 5 ships no Intel-mac build, so Intel macs use the universal zip).
PLATFORMS = {
    "linux-x64": ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"],
    "windows-x64": ["win_amd64"],
    "macos-arm64": ["macosx_12_0_arm64", "macosx_11_0_arm64"],
}
PYTHONS = ("3.11", "3.13")  # Blender 4.2-5.0, 5.1-5.2


def find_blender_ext() -> Path:
    """``blender_ext.py`` inside the installed ``bpy`` wheel."""
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


def runtime_distributions() -> dict[str, str]:
    """``msma_blender/deps.py``'s run-time set ``{import name: distribution}`` (read without
    importing the ``msma_blender`` package, which needs ``bpy``)."""
    spec = importlib.util.spec_from_file_location("msma_blender_deps", PACKAGE_DIR / "deps.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return dict(module.REQUIRED_MODULES)


def _requirement_name(line: str) -> str:
    return re.split(r"[<>=!~\[ ;]", line.strip(), maxsplit=1)[0].lower()


def extension_requirements(text: str, runtime: set[str]) -> str:
    """The lines of ``requirements.txt`` that pin the run-time distributions ``runtime``.

    Raises:
        SystemExit: a run-time distribution has no ``==`` pin (or has markers) there.
    """
    keep = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line and _requirement_name(line) in runtime:
            keep[_requirement_name(line)] = line
    bad = sorted(d for d in runtime if d not in keep or "==" not in keep[d] or ";" in keep[d])
    if bad:
        raise SystemExit(f"error: requirements.txt: needs one unconditional '==' pin for {', '.join(bad)}")
    return "\n".join(keep[d] for d in sorted(keep)) + "\n"


def _wheel_tags(name: str) -> tuple[str, str, str, str]:
    """``(distribution, python tag, abi tag, platform tag)`` of a wheel file name (lower case)."""
    parts = name[:-4].split("-")
    return parts[0].lower().replace("_", "-"), parts[-3], parts[-2], parts[-1]


def _wheel_fits(name: str, platform: str, python: str) -> bool:
    """Whether a wheel file name is for one of ``PLATFORMS[platform]`` and CPython ``python``."""
    _, py, abi, plat = _wheel_tags(name)
    cp = "cp" + python.replace(".", "")
    platform_ok = any(p in PLATFORMS[platform] for p in plat.split("."))
    if abi == "abi3":  # the stable ABI of CPython >= the tag's version (cp37 -> 3.7)
        return platform_ok and py.startswith("cp3") and int(py[3:]) <= int(python.split(".")[1])
    return platform_ok and (abi == cp or (abi == "none" and py in ("py3", cp)))


def bundled_wheels(wheel_dir: Path, pins: dict[str, str]) -> list[Path]:
    """The wheels of ``pins`` (``{distribution: version}``) for every platform and Python.

    Raises:
        SystemExit: one is missing from ``wheel_dir`` (names them; ``--download-wheels`` fetches them).
    """
    found, missing = set(), []
    files = sorted(wheel_dir.glob("*.whl")) if wheel_dir.is_dir() else []
    for platform in PLATFORMS:
        for python in PYTHONS:
            for dist, version in pins.items():
                hits = [f for f in files if _wheel_tags(f.name)[0] == dist
                        and f.name.split("-")[1] == version and _wheel_fits(f.name, platform, python)]
                if hits:
                    found.add(hits[0])
                else:
                    missing.append(f"{dist}=={version} ({platform}, Python {python})")
    if missing:
        raise SystemExit(f"error: {wheel_dir}: no wheel for {'; '.join(missing)} (use --download-wheels)")
    return sorted(found)


def download_wheels(wheel_dir: Path, requirements: list[str]) -> None:
    """``pip download`` the wheels of ``requirements`` for every platform and Python into ``wheel_dir``."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    for platform, tags in PLATFORMS.items():
        for python in PYTHONS:
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                   "--only-binary=:all:", "--no-deps", "--implementation", "cp", "--python-version", python,
                   "--dest", str(wheel_dir), *[a for tag in tags for a in ("--platform", tag)], *requirements]
            print(f"downloading wheels for {platform}, Python {python}", file=sys.stderr)
            subprocess.run(cmd, check=True)


def manifest_with_wheels(text: str, wheels: list[str], platforms: list[str] | None = None) -> str:
    """Insert a top-level ``wheels = [...]`` (and ``platforms = [...]``) before the first table."""
    entry = "wheels = [" + ", ".join(f'"./wheels/{w}"' for w in wheels) + "]\n\n"
    if platforms:
        entry = "platforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]\n" + entry
    match = re.search(r"^\[", text, flags=re.M)
    return text[:match.start()] + entry + text[match.start():] if match else text + "\n" + entry


def stage(staging: Path, bundled: list[Path] = ()) -> None:
    """Assemble the extension's files in ``staging``; ``bundled`` wheels go to ``wheels/`` and
    make the manifest list :data:`PLATFORMS`."""
    version = tomllib.loads(MANIFEST.read_text())["version"]
    for src in _python_files(PACKAGE_DIR):
        dst = staging / src.relative_to(PACKAGE_DIR)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    wheel = build_engine_wheel(staging / "wheels", version)
    for extra in bundled:
        shutil.copy2(extra, staging / "wheels" / extra.name)
    (staging / "blender_manifest.toml").write_text(manifest_with_wheels(
        MANIFEST.read_text(), [wheel.name] + [w.name for w in bundled], list(PLATFORMS) if bundled else None))
    if not (ENGINE_DIR / "data" / "default_head.npz").is_file():
        raise SystemExit(f"error: {ENGINE_DIR / 'data' / 'default_head.npz'}: missing (build the default head first)")
    (staging / "assets").mkdir()
    for weights in sorted(ASSETS.glob("*.pt")):
        shutil.copy2(weights, staging / "assets" / weights.name)
    (staging / "requirements-extension.txt").write_text(
        extension_requirements((ROOT / "requirements.txt").read_text(), set(runtime_distributions().values())))


def bundled_pins() -> dict[str, str]:
    """``{distribution: version}`` of the run-time packages bundled by ``--split-platforms`` (all but torch)."""
    text = extension_requirements((ROOT / "requirements.txt").read_text(), set(runtime_distributions().values()))
    pins = dict(line.split("==", 1) for line in text.split())
    pins.pop("torch")
    return pins


def build(output_dir: Path, blender_ext: Path | None = None, *, split_platforms: bool = False,
          wheel_dir: Path | None = None, download: bool = False) -> list[Path]:
    """Stage, build with ``blender_ext.py build`` and check with ``blender_ext.py validate``.

    Args:
        output_dir: where the zip(s) go.
        blender_ext: Blender's ``blender_ext.py`` (default: the ``bpy`` wheel's).
        split_platforms: one zip per platform of :data:`PLATFORMS`, with bundled wheels.
        wheel_dir: the bundled wheels (default ``build/wheels``).
        download: ``pip download`` them into ``wheel_dir`` first.

    Returns:
        The zip paths (one without ``split_platforms``).
    """
    blender_ext = blender_ext or find_blender_ext()
    manifest = tomllib.loads(MANIFEST.read_text())
    output_dir = output_dir.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    zip_path = output_dir / f"{manifest['id']}-{manifest['version']}.zip"
    bundled = []
    if split_platforms:
        wheel_dir = (wheel_dir or ROOT / "build" / "wheels").resolve()
        pins = bundled_pins()
        if download:
            download_wheels(wheel_dir, [f"{d}=={v}" for d, v in pins.items()])
        bundled = bundled_wheels(wheel_dir, pins)
    with tempfile.TemporaryDirectory(prefix="msma_ext_") as tmp:
        staging = Path(tmp) / manifest["id"]
        staging.mkdir()
        stage(staging, bundled)
        outputs = [zip_path.with_name(f"{zip_path.stem}-{p.replace('-', '_')}.zip") for p in PLATFORMS] \
            if split_platforms else [zip_path]
        for out in outputs:
            out.unlink(missing_ok=True)
        subprocess.run([sys.executable, str(blender_ext), "build", "--source-dir", str(staging),
                        "--output-filepath", str(zip_path), *(["--split-platforms"] if split_platforms else [])],
                       check=True)
    for out in outputs:
        subprocess.run([sys.executable, str(blender_ext), "validate", str(out)], check=True)
    return outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist", help="where the zip goes (default dist/)")
    parser.add_argument("--blender-ext", type=Path, help="blender_ext.py (default: the one in the bpy wheel)")
    parser.add_argument("--split-platforms", action="store_true",
                        help="one zip per platform, bundling scipy, pillow and opencv wheels")
    parser.add_argument("--wheel-dir", type=Path, help="wheels to bundle (default build/wheels)")
    parser.add_argument("--download-wheels", action="store_true", help="pip download the wheels to bundle first")
    args = parser.parse_args(argv)
    try:
        paths = build(args.output_dir, args.blender_ext, split_platforms=args.split_platforms,
                      wheel_dir=args.wheel_dir, download=args.download_wheels)
    except subprocess.CalledProcessError as err:
        print(f"error: {err.cmd[1]}: failed with exit status {err.returncode}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"built {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
