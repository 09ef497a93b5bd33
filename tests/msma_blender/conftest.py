"""Fixtures for the Blender extension tests: an isolated Blender user directory and FaceResults.

Blender reads its user directories from the environment when ``bpy`` is first imported, so
they are pointed at a temporary folder here, before any test imports ``bpy``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

_USER_ROOT = Path(tempfile.mkdtemp(prefix="msma_blender_user_"))
for _var in ("BLENDER_USER_RESOURCES", "BLENDER_USER_CONFIG", "BLENDER_USER_SCRIPTS"):
    os.environ[_var] = str(_USER_ROOT / _var.lower())

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for blender_fixtures


@pytest.fixture
def bpy_empty():
    """``bpy`` with an empty factory scene."""
    bpy = pytest.importorskip("bpy")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield bpy


@pytest.fixture
def sphere_face():
    """A FaceResult of the fabricated sphere model (3 expressions)."""
    from blender_fixtures import load_sphere_model_factory, make_face_result
    from msma_engine.face_model import FaceModel

    model = FaceModel(load_sphere_model_factory()(n_exp=3))
    return make_face_result(model, seed=0, image_path="/photos/portrait.jpg")
