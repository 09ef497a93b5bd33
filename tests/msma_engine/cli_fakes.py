"""A stand-in for the engine's Reconstructor in command-line tests: real outputs, no detector or fit.

The reconstruction of a photo is the fabricated sphere model's face whose albedo texture
is filled with the photo's mean grey level, so every output file (the .glb's embedded
texture, the albedo PNG, the coefficients' image path, the overlay's photo) tells which
photo it came from. Optional delays and a two-process barrier make races reproducible.

Used in-process (``install(monkeypatch)``) and from child processes (``python -m`` of the
driver in :func:`child_command`).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _blender_fixtures():
    path = TESTS / "msma_blender" / "blender_fixtures.py"
    spec = importlib.util.spec_from_file_location("msma_blender_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeReconstructor:
    """The part of :class:`msma_engine.pipeline.Reconstructor` that the CLI uses."""

    instances = 0
    settings: dict = {}

    def __init__(self, model=None, weights=None, device="cpu"):
        from msma_engine.face_model import FaceModel
        from msma_engine.render import RenderContext

        type(self).instances += 1
        fixtures = _blender_fixtures()
        self._make = fixtures.make_face_result
        self._model = FaceModel(fixtures.load_sphere_model_factory()(n_exp=3))
        self.ctx = RenderContext("torch")
        self._pending_model_delay = 0.0
        barrier = self.settings.get("barrier")
        if barrier:  # both processes have loaded their "model" before either goes on
            Path(barrier, str(os.getpid())).touch()
            deadline = time.monotonic() + 20
            while len(list(Path(barrier).iterdir())) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)

    @property
    def model(self):
        time.sleep(self._pending_model_delay)  # the old CLI read rec.model between its check and its writes
        self._pending_model_delay = 0.0
        return self._model

    def reconstruct(self, loaded, fit=None, texture_size=64, face="largest"):
        import dataclasses

        import numpy as np

        from msma_engine.result import FitMetrics

        time.sleep(self.settings.get("reconstruct_delay", 0.0))
        self._pending_model_delay = self.settings.get("model_delay", 0.0)
        res = self._make(self._model, seed=0, image_path=str(loaded.path), texture_size=16)
        grey = np.full_like(res.albedo_texture, int(round(float(loaded.pixels.mean()))))
        metrics = FitMetrics(landmark_nme_start=0.05, landmark_nme_fit=0.01, photometric_start=0.2,
                             photometric_fit=0.1, texture_coverage=0.5, texture_mirrored=0.2)
        return dataclasses.replace(res, albedo_texture=grey, face_index=int(self.settings.get("face_index", 0)),
                                   metrics=metrics)

    def reconstruct_all(self, loaded, fit=None, texture_size=64):
        return [self.reconstruct(loaded, fit, texture_size)]


def install(monkeypatch_or_none=None, **settings) -> type[FakeReconstructor]:
    """Replace the pipeline's Reconstructor (and optionally slow down/kill the overlay)."""
    import msma_engine.overlay
    import msma_engine.pipeline

    FakeReconstructor.settings = settings
    FakeReconstructor.instances = 0
    real_overlay = msma_engine.overlay.render_overlay

    def overlay(photo, result, **kw):
        action = settings.get("overlay")
        if action == "kill":
            os.kill(os.getpid(), 9)
        if action == "interrupt":
            raise KeyboardInterrupt
        time.sleep(settings.get("overlay_delay", 0.0))
        return real_overlay(photo, result, output_size=64, max_render_size=64, **kw)

    if monkeypatch_or_none is None:
        msma_engine.pipeline.Reconstructor = FakeReconstructor
        msma_engine.overlay.render_overlay = overlay
    else:
        monkeypatch_or_none.setattr(msma_engine.pipeline, "Reconstructor", FakeReconstructor)
        monkeypatch_or_none.setattr(msma_engine.overlay, "render_overlay", overlay)
    return FakeReconstructor


def child_command(argv: list[str], **settings) -> list[str]:
    """A ``python -c`` command line running ``msma_engine.cli.main(argv)`` with the fake installed."""
    code = (f"import sys; sys.path[:0] = [{str(TESTS / 'msma_engine')!r}, {str(TESTS)!r}]; import cli_fakes; "
            f"cli_fakes.install(**{settings!r}); from msma_engine.cli import main; sys.exit(main({argv!r}))")
    return [sys.executable, "-c", code]
