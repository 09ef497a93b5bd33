"""atomic_write with a writer callable (np.savez, torch.save): complete file or the old one, no temporary."""

from __future__ import annotations

import numpy as np
import pytest

from msma_engine.fileio import TEMP_MARK, atomic_write, is_temporary, temporary_name


def test_writer_callable_round_trips(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = atomic_write(tmp_path / "x.npz", lambda fh: np.savez_compressed(fh, a=a, name="x"))
    with np.load(path) as z:
        np.testing.assert_array_equal(z["a"], a)
        assert str(z["name"]) == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["x.npz"]


def test_failing_writer_keeps_the_old_file_and_no_temporary(tmp_path):
    target = atomic_write(tmp_path / "x.npy", lambda fh: np.save(fh, np.ones(3)))

    def half_then_fail(fh):
        fh.write(b"\x93NUMPY half a header")
        raise KeyboardInterrupt  # Ctrl-C in the middle of a write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half_then_fail)
    np.testing.assert_array_equal(np.load(target), np.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]


def test_text_bytes_and_refusal(tmp_path):
    target = atomic_write(tmp_path / "t.txt", "é\n")
    assert target.read_bytes() == "é\n".encode()
    with pytest.raises(FileExistsError):
        atomic_write(target, lambda fh: fh.write(b"new"), overwrite=False)
    assert target.read_text(encoding="utf-8") == "é\n"


def test_is_temporary(tmp_path):
    tmp = temporary_name(tmp_path / "entry.npz")
    assert is_temporary(tmp) and TEMP_MARK in tmp.name and tmp.suffix == ".npz"
    assert not is_temporary(tmp_path / "entry.npz")
    assert not is_temporary(tmp_path / f"x{TEMP_MARK}1.npz")  # not hidden: a user's file
