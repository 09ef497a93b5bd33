"""A 20-step CPU training run lowers the loss; a resumed run matches an uninterrupted one."""

from __future__ import annotations

import csv

import pytest
import torch

from sphere_model import make_sphere_model
from msma_engine.face_model import FaceModel
from training.config import config_from_dict
from training.data.synthetic import SyntheticFaces
from training.trainer import StepSampler, Trainer


@pytest.fixture(autouse=True)
def one_thread():
    """The tiny runs use one thread (``run.threads``); restore the process setting after."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sphere() -> FaceModel:
    return FaceModel(make_sphere_model(n_lat=16, n_lon=20))


def tiny_config(steps: int, **loss):
    return config_from_dict({
        "model": {"arch": "msma_light", "input_size": 32},
        "optim": {"batch_size": 2, "max_steps": steps, "lr": 1e-3},
        "data": {"epoch_size": 40},
        "loss": {"coeff": 1.0, "vertex": 0.1, "photometric": 0.0, **loss},
        "run": {"checkpoint_every": 10, "log_every": 1, "device": "cpu", "seed": 0, "threads": 1},
    })


def _totals(run_dir):
    return [float(r["total"]) for r in csv.DictReader((run_dir / "log.csv").open())]


def test_step_sampler_is_a_function_of_step():
    s = StepSampler(10, 3, steps=8, seed=1, shuffle=True, rank=1, world_size=2)
    batches = list(s)
    assert len(batches) == 8 and all(len(b) == 3 for b in batches)
    resumed = list(StepSampler(10, 3, steps=8, start_step=5, seed=1, shuffle=True, rank=1, world_size=2))
    assert resumed == batches[5:]
    r0 = StepSampler(10, 3, steps=8, seed=1, shuffle=True, rank=0, world_size=2)
    # Ranks share each epoch's permutation without overlap within a global batch.
    assert not set(r0.batch(0)) & set(batches[0])


@pytest.mark.slow
def test_twenty_steps_lower_the_loss_and_resume_exactly(sphere, tmp_path):
    # Four samples repeated: the network can fit them, so the loss must fall.
    data = SyntheticFaces(sphere, seed=0, length=4)
    full = Trainer(tiny_config(20), tmp_path / "full", face_model=sphere, dataset=data)
    full.fit(progress=False)
    totals = _totals(tmp_path / "full")
    assert len(totals) == 20
    assert sum(totals[-4:]) / 4 < 0.7 * sum(totals[:4]) / 4
    assert (tmp_path / "full" / "curves.png").stat().st_size > 0

    part = Trainer(tiny_config(10), tmp_path / "part", face_model=sphere, dataset=data)
    part.fit(progress=False)
    assert part.checkpoint_path.exists()
    resumed = Trainer(tiny_config(20), tmp_path / "part", face_model=sphere, dataset=data)
    resumed.fit(resume=True, progress=False)
    assert resumed.step == 20
    assert _totals(tmp_path / "part") == pytest.approx(totals, rel=1e-5)
    for p, q in zip(full.net.state_dict().values(), resumed.net.state_dict().values()):
        assert torch.allclose(p.float(), q.float(), atol=1e-6)

    weights = resumed.export_weights(tmp_path / "w.pt")
    from msma_engine.network import load_weights

    net = load_weights(weights, "msma_light", *sphere.layout.sizes[:3])
    assert net.meta["steps"] == 20 and net.meta["input_size"] == 32


def test_short_resume_matches_uninterrupted(sphere, tmp_path):
    data = SyntheticFaces(sphere, seed=1, length=6)
    full = Trainer(tiny_config(4), tmp_path / "full", face_model=sphere, dataset=data)
    last = full.fit(progress=False)
    part = Trainer(tiny_config(2), tmp_path / "part", face_model=sphere, dataset=data)
    part.fit(progress=False)
    resumed = Trainer(tiny_config(4), tmp_path / "part", face_model=sphere, dataset=data)
    assert resumed.fit(resume=True, progress=False) == pytest.approx(last, rel=1e-5)
    assert resumed.step == 4 and resumed.scheduler.last_epoch == 4


def test_photometric_step_runs(sphere, tmp_path):
    data = SyntheticFaces(sphere, seed=0, length=2)
    tr = Trainer(tiny_config(1, photometric=1.92), tmp_path, face_model=sphere, dataset=data)
    batch = {k: torch.stack([data[i][k] for i in range(2)]) for k in data[0]}
    losses = tr.train_step(batch)
    assert losses["photometric"] > 0 and tr.step == 1
    assert set(losses) >= {"landmark", "regularization", "gamma", "reflectance", "coeff", "vertex", "total"}


class _Fixed(torch.nn.Module):
    """Stands in for the network: returns the given coefficients for any batch."""

    def __init__(self, coeffs: torch.Tensor) -> None:
        super().__init__()
        self.coeffs = coeffs

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.coeffs


def test_shape_loss_ignores_pose_and_measures_identity(sphere, tmp_path):
    data = SyntheticFaces(sphere, seed=3, length=2)
    batch = {k: torch.stack([data[i][k] for i in range(2)]) for k in data[0]}
    trainer = Trainer(tiny_config(1, shape=1.0, coeff=0.0), tmp_path, face_model=sphere, dataset=data)
    sl = sphere.layout.slices()

    turned = batch["coeffs"].clone()
    turned[:, sl["angles"]] += 0.3
    trainer.model = _Fixed(turned)
    losses = trainer.compute_losses(batch)
    assert losses["shape"].item() < 1e-2 and losses["vertex"].item() > 1.0  # mm: pose only moves posed vertices

    other = batch["coeffs"].clone()
    other[:, sl["id"]] += 1.0
    trainer.model = _Fixed(other)
    expected = (sphere.shape(other[:, sl["id"]], other[:, sl["exp"]])
                - sphere.shape(batch["coeffs"][:, sl["id"]], batch["coeffs"][:, sl["exp"]]))[:, sphere.face_region]
    assert trainer.compute_losses(batch)["shape"].item() == pytest.approx(
        (expected * 1000).norm(dim=-1).mean().item(), rel=1e-3)
