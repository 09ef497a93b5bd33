"""Shared fixtures: a tiny fabricated face model in the container format."""

from __future__ import annotations

import pytest

from msma_engine.model_file import FaceModelData
from sphere_model import make_sphere_model


@pytest.fixture
def sphere_model_data() -> FaceModelData:
    return make_sphere_model()
