"""Where the test-only data kept outside the repository live (never copied into it).

``MSMA_SHARED_DATA`` overrides; otherwise ``../shared/data`` beside the checkout, then the
build machines' ``/work/shared/data``. Tests that need a file from there skip, naming the
path, when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SHARED_DATA", "PHOTOS", "BFM_HELPERS"]


def _shared_data() -> Path:
    env = os.environ.get("MSMA_SHARED_DATA")
    if env:
        return Path(env)
    candidates = [Path(__file__).resolve().parents[2] / "shared" / "data", Path("/work/shared/data")]
    return next((c for c in candidates if c.is_dir()), candidates[0])


SHARED_DATA = _shared_data()
PHOTOS = SHARED_DATA / "photos"
BFM_HELPERS = Path(os.environ.get("MSMA_BFM_HELPERS") or SHARED_DATA / "bfm09_helpers")
