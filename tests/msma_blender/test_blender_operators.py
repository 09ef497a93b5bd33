"""Reconstruct Face's final report (the popup a user sees) carries the engine's reason.

Runs the real operator through the bpy module with the real engine. In background mode an
operator's ERROR report comes back as the RuntimeError of ``bpy.ops``; in the UI it is the
popup under the cursor.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("bpy")


@pytest.fixture
def registered(bpy_empty):
    import msma_blender
    from msma_blender import pipeline

    msma_blender.register()
    pipeline.clear_sessions()
    yield bpy_empty
    pipeline.clear_sessions()
    msma_blender.unregister()


@pytest.fixture
def photo(tmp_path):
    from PIL import Image

    path = tmp_path / "grey.png"
    Image.fromarray(np.full((240, 320, 3), 128, np.uint8)).save(path)
    return path


def test_failed_reconstruction_reports_the_engine_reason(registered, photo, tmp_path):
    from msma_engine.errors import MSMAError
    from msma_engine.face_model import load_face_model

    bad = tmp_path / "not_a_model.npz"
    bad.write_bytes(b"this is not a face model")
    with pytest.raises(MSMAError) as engine:  # what the engine itself says about this file
        load_face_model(bad)
    s = registered.context.scene.msma
    s.source, s.image_path, s.model_path, s.fit = "FILE", str(photo), str(bad), "none"

    with pytest.raises(RuntimeError) as popup:
        registered.ops.msma.reconstruct_face()

    text = str(popup.value)
    assert "MSMA: no face was reconstructed: " in text and str(engine.value) in text, text
    assert not [o for o in registered.data.objects if "msma_coeffs" in o]


def test_no_face_photo_reports_why(registered, photo):
    s = registered.context.scene.msma
    s.source, s.image_path, s.fit = "FILE", str(photo), "none"

    with pytest.raises(RuntimeError) as popup:
        registered.ops.msma.reconstruct_face()

    text = str(popup.value)
    # "<photo>: <reason>": no face on a flat grey image, or (without the engine's
    # dependencies) which packages are missing; never the bare "no face was reconstructed".
    assert f"MSMA: no face was reconstructed: {photo}: " in text or "Python dependencies are missing" in text, text
    assert not text.rstrip().endswith("no face was reconstructed")
