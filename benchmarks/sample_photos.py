"""Public-domain portraits the benchmarks use besides scikit-image's astronaut.

``MSMA_SHARED_DATA`` overrides; otherwise ``../shared/data`` beside the checkout, then
``/work/shared/data``. Missing photos are simply left out of the tables.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SHARED_PHOTOS"]


def _photos() -> Path:
    env = os.environ.get("MSMA_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[2] / "shared" / "data", Path("/work/shared/data")]
    return next((c for c in candidates if c.is_dir()), candidates[0]) / "photos"


SHARED_PHOTOS = _photos()
