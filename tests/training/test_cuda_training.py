"""CUDA checks of the training path (run by scripts/gpu_train.sh on a GPU machine; skipped elsewhere):
the renderer and the on-device synthetic batches on CUDA agree with the CPU, and an AMP step
(float16 with loss scaling, bfloat16, channels_last) gives finite losses and moves the weights."""

from __future__ import annotations

import pytest
import torch

from msma_engine.face_model import DEFAULT_MODEL_PATH, load_face_model
from training.config import SyntheticConfig, config_from_dict

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason="no CUDA device: torch.cuda.is_available() is False"),
              pytest.mark.skipif(not DEFAULT_MODEL_PATH.exists(), reason=f"{DEFAULT_MODEL_PATH} not built")]

CLEAN = SyntheticConfig(p_occluder=0, p_blur=0, p_noise=0, p_jpeg=0, p_color=0)


def test_device_synthetic_on_cuda_matches_cpu():
    from training.data.device_batches import DeviceSynthetic

    cpu_model = load_face_model(None)
    gpu = DeviceSynthetic(load_face_model(None).cuda(), CLEAN, seed=2).batch([0, 1, 2, 3])
    cpu = DeviceSynthetic(cpu_model, CLEAN, seed=2).batch([0, 1, 2, 3])
    face = (cpu["face_mask"] > 0.5) & (gpu["face_mask"].cpu() > 0.5)
    assert face.float().mean() > 0.1
    # Same coefficients and geometry; pixels agree on the face (backgrounds use device RNG streams).
    assert torch.equal(gpu["coeffs"].cpu(), cpu["coeffs"])
    assert torch.allclose(gpu["landmarks"].cpu(), cpu["landmarks"], atol=1e-3)
    diff = (gpu["image"].cpu() - cpu["image"]).abs()[face.expand_as(cpu["image"])]
    assert float(diff.mean()) < 0.01


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_amp_step_on_cuda(tmp_path, dtype):
    from training.trainer import Trainer

    cfg = config_from_dict({
        "model": {"arch": "msma_light", "input_size": 112},
        "optim": {"batch_size": 8, "max_steps": 10, "lr": 1e-3},
        "data": {"epoch_size": 64, "generator": "device"},
        "loss": {"perceptual": 0.0, "coeff": 1.0, "shape": 1.0},
        "run": {"device": "cuda", "amp": True, "amp_dtype": dtype, "channels_last": True},
    })
    trainer = Trainer(cfg, tmp_path / "run")
    batches = trainer.dataset.batch_iterator(8, 2, 0, trainer.device)
    before = [p.detach().clone() for p in trainer.net.parameters()]
    for batch in batches:
        losses = trainer.train_step(batch)
        assert all(torch.isfinite(torch.tensor(v)) for v in losses.values()), losses
        assert losses["photometric"] > 0  # the prediction is rendered on CUDA inside the loss
    moved = sum(float((p.detach() - b).abs().sum()) for p, b in zip(trainer.net.parameters(), before))
    assert moved > 0
    assert trainer.scaler.is_enabled() == (dtype == "float16")
