"""Real photos shared by the detection tests (read in place, never copied)."""

from __future__ import annotations


import numpy as np
import pytest
import skimage.data
from shared_data import PHOTOS



def _portrait(name: str) -> np.ndarray:
    from msma_engine.image_io import load_image

    path = PHOTOS / f"{name}_official_portrait.jpg"
    if not path.exists():
        pytest.skip(f"{path} not present")
    return load_image(path).pixels


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


@pytest.fixture(scope="session", params=["astronaut", "obama", "biden"])
def real_photo(request) -> tuple[str, np.ndarray]:
    """(name, image) for each public-domain test photo."""
    if request.param == "astronaut":
        return "astronaut", skimage.data.astronaut()
    return request.param, _portrait(request.param)
