"""Synthetic batches rendered on the training device match the per-sample generator; the trainer
streams them (and stops on its time budget)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from msma_engine.face_model import DEFAULT_MODEL_PATH, load_face_model
from training.config import SyntheticConfig, config_from_dict
from training.data.device_batches import DeviceSynthetic
from training.data.synthetic import SyntheticFaces

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL_PATH.exists(), reason=f"{DEFAULT_MODEL_PATH} not built")

CLEAN = SyntheticConfig(p_occluder=0, p_blur=0, p_noise=0, p_jpeg=0, p_color=0)


@pytest.fixture(scope="module")
def model():
    return load_face_model(None)


def test_device_batch_is_the_cpu_generators_face(model):
    dev = DeviceSynthetic(model, CLEAN, seed=5).batch([3, 11])
    cpu = SyntheticFaces(model, CLEAN, seed=5, length=20, augment=False)
    for row, index in enumerate([3, 11]):
        ref = cpu[index]
        assert torch.equal(dev["coeffs"][row], ref["coeffs"])
        face = ref["face_mask"][0] > 0.5
        assert torch.allclose(dev["image"][row][:, face], ref["image"][:, face], atol=1e-5)
        assert torch.allclose(dev["landmarks"][row], ref["landmarks"])
        # Background differs from the face (a real composite, not a black frame).
        assert dev["image"][row][:, ~face].std() > 0.01


def test_augmentations_change_pixels_and_occluders_cut_the_skin_mask(model):
    cfg = SyntheticConfig(p_occluder=1.0, p_blur=1.0, p_noise=1.0, p_color=1.0)
    aug = DeviceSynthetic(model, cfg, seed=1).batch(list(range(4)))
    clean = DeviceSynthetic(model, CLEAN, seed=1).batch(list(range(4)))
    assert aug["image"].shape == (4, 3, 224, 224) and 0 <= float(aug["image"].min()) and float(aug["image"].max()) <= 1
    face = clean["face_mask"] > 0.5
    assert (aug["image"] - clean["image"]).abs()[face.expand_as(aug["image"])].mean() > 0.02
    assert float(aug["mask"].sum()) < float(clean["mask"].sum())  # the bars hide some skin
    again = DeviceSynthetic(model, cfg, seed=1).batch(list(range(4)))
    assert torch.equal(again["image"], aug["image"])  # a pure function of (seed, indices)


@pytest.mark.slow  # writes a 200 MB checkpoint (msma_light + Adam state)
def test_trainer_streams_device_batches_and_keeps_its_time_budget(model, tmp_path):
    from training.trainer import Trainer

    cfg = config_from_dict({
        "model": {"arch": "msma_light", "input_size": 32},
        "optim": {"batch_size": 2, "max_steps": 1000, "lr": 1e-3},
        "data": {"epoch_size": 8, "generator": "device"},
        "loss": {"photometric": 0.0, "perceptual": 0.0, "coeff": 1.0},
        "run": {"device": "cpu", "threads": 1, "checkpoint_every": 1000, "log_every": 1, "max_minutes": 0.004,
                "channels_last": True},
    })
    before = torch.get_num_threads()
    try:
        trainer = Trainer(cfg, tmp_path / "run", face_model=model)
        last = trainer.fit(progress=False)
    finally:
        torch.set_num_threads(before)
    assert 1 <= trainer.step < 1000 and "coeff" in last and np.isfinite(last["total"])
    assert trainer.checkpoint_path.exists()  # the budget ends with a checkpoint
