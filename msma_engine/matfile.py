"""Reading MATLAB ``.mat`` (v5) files with errors a user can act on.

Face-model sources such as the Basel Face Model 2009 and Deep3DFaceRecon's index
files are MAT v5 files (often zlib-compressed). :func:`read_mat_arrays` loads
only the variables asked for and checks each one's shape, so a missing,
truncated or wrong file raises :class:`msma_engine.errors.ModelFileError` that names
the file, the key, the expected and the actual shape.

Example:
    >>> arrays = read_mat_arrays("BFM/BFM_front_idx.mat", {"idx": (None, 1)})
    >>> arrays["idx"].shape
    (35709, 1)
"""

from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path

import numpy as np
import scipy.io
from scipy.io.matlab import MatReadError

from msma_engine.errors import ModelFileError

__all__ = ["read_mat_arrays", "check_shape", "ShapeSpec"]

log = logging.getLogger(__name__)

#: Expected shape: one entry per dimension, ``None`` for "any size".
ShapeSpec = tuple[int | None, ...]

_MI_COMPRESSED = 15

# What scipy raises on truncated, corrupt or non-MAT input.
_READ_ERRORS = (MatReadError, ValueError, OSError, EOFError, zlib.error, TypeError, KeyError,
                IndexError, AssertionError)


def _describe(spec: ShapeSpec) -> str:
    return "(" + ", ".join("any" if d is None else str(d) for d in spec) + ("," if len(spec) == 1 else "") + ")"


def check_shape(path: str | Path, key: str, array: np.ndarray, spec: ShapeSpec) -> None:
    """Raise :class:`ModelFileError` unless ``array.shape`` matches ``spec``.

    Args:
        path: the file the array came from (for the message).
        key: the variable name (for the message).
        array: the array to check.
        spec: expected shape; ``None`` entries match any size.

    Raises:
        ModelFileError: naming the file, key, expected and actual shape.
    """
    ok = array.ndim == len(spec) and all(e is None or e == a for e, a in zip(spec, array.shape))
    if not ok:
        raise ModelFileError(
            f"{path}: '{key}' has shape {tuple(array.shape)}, expected {_describe(spec)}")


def read_mat_arrays(path: str | Path, specs: dict[str, ShapeSpec | None]) -> dict[str, np.ndarray]:
    """Load the named variables of a MAT v5 file and check their shapes.

    Only the requested variables are decoded (a 500 MB morphable model is not read
    in full to get six arrays).

    Args:
        path: the ``.mat`` file.
        specs: variable name -> expected shape (``None`` entries match any size;
            a ``None`` spec accepts any shape). Every variable must be numeric.

    Returns:
        Variable name -> NumPy array as stored (dtype unchanged).

    Raises:
        ModelFileError: the file is missing, unreadable or truncated, is a MAT v7.3
            (HDF5) file, lacks a variable (all missing names are listed), holds a
            non-numeric variable, or an array has the wrong shape.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"file not found: {path}")
    cut = _truncation(path)
    if cut:
        raise ModelFileError(f"{path}: truncated MAT file ({cut})")
    try:
        raw = scipy.io.loadmat(str(path), variable_names=list(specs))
    except NotImplementedError as exc:
        # scipy refuses MAT v7.3 (an HDF5 container) with NotImplementedError.
        raise ModelFileError(
            f"{path}: MAT v7.3 (HDF5) files are not supported; re-save it in MATLAB with "
            f"save(..., '-v7') ({exc})") from exc
    except _READ_ERRORS as exc:
        raise ModelFileError(f"{path}: not a readable MAT v5 file, or truncated ({type(exc).__name__}: {exc})") from exc
    missing = [k for k in specs if k not in raw]
    if missing:
        raise ModelFileError(f"{path}: missing key(s) {missing}; the file holds {_list_keys(path)}")
    out: dict[str, np.ndarray] = {}
    for key, spec in specs.items():
        arr = raw[key]
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
            raise ModelFileError(f"{path}: '{key}' is not a numeric array (got {type(arr).__name__} "
                                 f"{getattr(arr, 'dtype', '')})")
        if spec is not None:
            check_shape(path, key, arr, spec)
        out[key] = arr
    log.debug("read %s: %s", path, {k: v.shape for k, v in out.items()})
    return out


def _truncation(path: Path) -> str | None:
    """Walk a MAT v5 file's top-level data elements; say where it is cut short, else ``None``.

    scipy stops quietly at a cut between two variables, which would otherwise surface
    as a "missing key". Files that are not MAT v5 are left to scipy to reject.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(128)
        if len(head) < 128:
            return f"{size} bytes, shorter than the 128-byte MAT header"
        endian = {b"IM": "<", b"MI": ">"}.get(head[126:128])
        if endian is None or struct.unpack(endian + "H", head[124:126])[0] != 0x0100:
            return None
        pos = 128
        while pos < size:
            fh.seek(pos)
            tag = fh.read(8)
            if len(tag) < 8:
                return f"the file ends inside a data-element tag at byte {pos}"
            mdtype, n_bytes = struct.unpack(endian + "II", tag)
            if mdtype >> 16:              # small data element: 4 bytes of data inside the tag
                pos += 8
                continue
            end = pos + 8 + n_bytes
            if end > size:
                return f"the data element at byte {pos} needs {end} bytes, the file has {size}"
            pos = end + (0 if mdtype == _MI_COMPRESSED else (-n_bytes) % 8)
    return None


def _list_keys(path: Path) -> list[str]:
    """Names of the variables in a MAT file, or ``["<unreadable>"]``."""
    try:
        return sorted(name for name, _, _ in scipy.io.whosmat(str(path)))
    except _READ_ERRORS + (NotImplementedError,):
        return ["<unreadable>"]
