"""Real-photo training pieces: losses, mixed sampler, pseudo-labels and a trainer step on photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from msma_engine.face_model import DEFAULT_MODEL_PATH
from shared_data import PHOTOS
from training.data.mixed import MixedStepSampler
from training.data.split import is_holdout
from msma_engine.losses import coefficient_loss
from training.real_losses import distillation_loss, identity_consistency_loss

SLICES = {"id": slice(0, 3), "exp": slice(3, 5), "tex": slice(5, 5), "angles": slice(5, 8),
          "gamma": slice(8, 8), "trans": slice(8, 11)}
GROUPS = (1.0, 1.0, 0.5, 10.0, 1.0, 10.0)


def test_distillation_uses_only_labelled_rows():
    torch.manual_seed(0)
    pred, target = torch.randn(4, 11, requires_grad=True), torch.randn(4, 11)
    valid = torch.tensor([1.0, 0.0, 1.0, 0.0])
    loss = distillation_loss(pred, target, valid, SLICES, GROUPS)
    assert torch.isclose(loss, coefficient_loss(pred[[0, 2]], target[[0, 2]], SLICES, GROUPS))
    other = target.clone()
    other[[1, 3]] += 100.0  # labels of unlabelled rows must not matter
    assert torch.isclose(distillation_loss(pred, other, valid, SLICES, GROUPS), loss)
    loss.backward()
    assert pred.grad[[1, 3]].abs().sum() == 0 and pred.grad[[0, 2]].abs().sum() > 0
    none = distillation_loss(pred, target, torch.zeros(4), SLICES, GROUPS)
    assert float(none) == 0.0 and none.requires_grad


def test_identity_consistency_pulls_same_person_together():
    ids = torch.tensor([[0.0, 0.0], [2.0, 0.0], [5.0, 5.0], [9.0, 9.0], [1.0, 1.0]])
    person = torch.tensor([3, 3, -1, -1, 7])
    # Person 3: mean (1, 0), each photo 1 away → squared 1; unknown and single photos are ignored.
    assert torch.isclose(identity_consistency_loss(ids, person), torch.tensor(1.0))
    assert float(identity_consistency_loss(ids, torch.tensor([0, 1, -1, -1, 2]))) == 0.0
    same = ids.clone()
    same[1] = same[0]
    assert float(identity_consistency_loss(same, person)) == 0.0


def test_mixed_sampler_is_deterministic_and_pairs_people():
    person = np.array([0, 0, 1, 1, 1, -1, -1, 2, -1, -1])
    s = MixedStepSampler(100, person, batch_size=6, steps=200, seed=3, fraction=0.5, pair_fraction=0.7)
    batches = list(s)
    real = [b for b in batches if b[0] >= 100]
    synth = [b for b in batches if b[0] < 100]
    assert 60 < len(real) < 140 and all(all(i >= 100 for i in b) for b in real)
    assert all(all(i < 100 for i in b) for b in synth)
    for b in real:  # two same-person pairs first (int(6 × 0.7) // 2 = 2), then random photos
        p = person[np.array(b) - 100]
        assert p[0] == p[1] >= 0 and p[2] == p[3] >= 0 and b[0] != b[1] and b[2] != b[3]
    resumed = list(MixedStepSampler(100, person, 6, 200, start_step=150, seed=3, fraction=0.5, pair_fraction=0.7))
    assert resumed == batches[150:]
    assert not any(b[0] >= 100 for b in MixedStepSampler(100, person, 6, 50, fraction=0.0))


@pytest.fixture(scope="module")
def photo_root(tmp_path_factory):
    """Two 'LFW people' of the training split, two photos each (public-domain portraits)."""
    if not DEFAULT_MODEL_PATH.exists() or not (PHOTOS / "obama_official_portrait.jpg").exists():
        pytest.skip(f"needs {DEFAULT_MODEL_PATH} and {PHOTOS}")
    from skimage.data import astronaut

    from training.data.folder import preprocess_folder

    root = tmp_path_factory.mktemp("faces")
    names = [n for n in (f"Train_Person_{i}" for i in range(50)) if not is_holdout(f"lfw/{n}/{n}_0001.jpg")][:2]
    obama = Image.open(PHOTOS / "obama_official_portrait.jpg").convert("RGB")
    obama.thumbnail((500, 500))
    photos = {names[0]: [Image.fromarray(astronaut()), Image.fromarray(astronaut()[:, ::-1])],
              names[1]: [obama, obama.resize((obama.width * 4 // 5, obama.height * 4 // 5))]}
    for name, images in photos.items():
        (root / "lfw" / name).mkdir(parents=True)
        for j, im in enumerate(images):
            im.save(root / "lfw" / name / f"{name}_{j + 1:04d}.jpg")
    assert preprocess_folder(root, root / "cache", progress=False)["processed"] == 4
    return root


@pytest.mark.slow
def test_pseudo_labels_fit_the_landmarks_and_resume(photo_root, tmp_path):
    from msma_engine.face_model import load_face_model
    from training.data.folder import FaceFolder
    from training.metrics import landmark_nme
    from training.pseudo_labels import make_pseudo_labels

    out = tmp_path / "labels"
    counts = make_pseudo_labels(photo_root, photo_root / "cache", out, fit="fast", progress=False)
    assert counts["labelled"] == 4 and counts["rejected"] == 0
    assert make_pseudo_labels(photo_root, photo_root / "cache", out, fit="fast", progress=False)["done"] == 4
    with pytest.raises(Exception, match="made differently"):
        make_pseudo_labels(photo_root, photo_root / "cache", out, fit="default", progress=False)
    model = load_face_model(None)
    ds = FaceFolder(photo_root, photo_root / "cache", labels=out)
    for i in range(len(ds)):
        item = ds[i]
        assert item["pseudo_valid"] == 1
        with torch.no_grad():
            lm = model(item["pseudo_coeffs"][None]).landmarks_2d
        # The label re-projects onto the detector's cached points (mean face posed: ~4-6 %).
        assert float(landmark_nme(lm, item["landmarks"][None])[0]) < 0.03
    strict = make_pseudo_labels(photo_root, photo_root / "cache", tmp_path / "strict", fit="fast", max_nme=1e-6,
                                progress=False)
    assert strict["rejected"] == 4 and len((tmp_path / "strict" / "rejected.tsv").read_text().splitlines()) == 4


def test_trainer_takes_real_batches_with_distillation_and_identity(photo_root, tmp_path):
    from training.config import config_from_dict
    from training.pseudo_labels import make_pseudo_labels
    from training.trainer import Trainer

    labels = tmp_path / "labels"
    make_pseudo_labels(photo_root, photo_root / "cache", labels, fit="fast", progress=False)
    cfg = config_from_dict({
        "model": {"arch": "msma_light", "input_size": 32},
        "optim": {"batch_size": 4, "max_steps": 2, "lr": 1e-3},
        "data": {"epoch_size": 8},
        "loss": {"photometric": 0.0, "perceptual": 0.0, "shape": 1.0},
        "run": {"device": "cpu", "threads": 1, "checkpoint_every": 100, "log_every": 1},
        "real": {"folder": str(photo_root), "cache": str(photo_root / "cache"), "labels": str(labels),
                 "fraction": 1.0, "pair_fraction": 1.0},
    })
    before = torch.get_num_threads()
    try:
        trainer = Trainer(cfg, tmp_path / "run")
        sampler = trainer.dataset.batch_sampler(4, 2)
        batch = torch.utils.data.default_collate([trainer.dataset[i] for i in sampler.batch(0)])
        assert (batch["person"][0] == batch["person"][1]) and (batch["person"][2] == batch["person"][3])
        torch.manual_seed(0)
        with torch.no_grad():  # the heads start at zero (the mean face); give the photos distinct outputs
            for p in trainer.net.parameters():
                p.add_(0.01 * torch.randn_like(p))
        losses = trainer.compute_losses(batch)
        # Real batches carry no exact shape: the synthetic-only terms stay off.
        assert losses["distill"] > 0 and losses["identity_consistency"] > 0 and "shape" not in losses
        last = trainer.fit(progress=False)
    finally:
        torch.set_num_threads(before)
    assert {"distill", "identity_consistency", "landmark"} <= set(last) and np.isfinite(last["total"])


def test_dense_landmark_term_uses_the_models_correspondence():
    from msma_engine.face_model import FaceModel
    from sphere_model import make_sphere_model
    from training.config import RealConfig
    from training.real_losses import dense_landmark_loss, dense_points_2d, real_losses

    model = FaceModel(make_sphere_model(n_lat=8, n_lon=10))
    coeffs = model.layout.zeros(2)
    verts = model(coeffs).vertices
    batch = {"dense": torch.zeros(2, 5, 2), "dense_valid": torch.ones(2)}
    assert dense_points_2d(model, verts) is None  # no correspondence: the term stays off
    assert "dense_landmark" not in real_losses(RealConfig(), coeffs, batch, model, verts)

    tris = model.triangles[:5]
    model.dense_landmark_vertices = tris
    model.dense_landmark_weights = torch.full((5, 3), 1.0 / 3.0)
    pts = dense_points_2d(model, verts)
    assert torch.allclose(pts, model.camera.project(verts[:, tris].mean(2)), atol=1e-5)
    target = pts.detach().clone()
    target[1, :, 0] += 2.0  # photo 1's detector points sit 2 px to the right
    assert float(dense_landmark_loss(pts, target, torch.tensor([1.0, 0.0]))) == pytest.approx(0.0, abs=1e-8)
    assert float(dense_landmark_loss(pts, target, torch.tensor([0.0, 1.0]))) == pytest.approx(4.0, rel=1e-4)
    batch = {"dense": target, "dense_valid": torch.ones(2)}
    got = real_losses(RealConfig(w_dense=0.5), coeffs, batch, model, verts)["dense_landmark"]
    assert float(got) == pytest.approx(0.5 * 2.0, rel=1e-4)


def test_device_stream_mixes_real_and_synthetic_lazily(photo_root):
    from msma_engine.face_model import load_face_model
    from training.config import SyntheticConfig
    from training.data.device_batches import DeviceBatches
    from training.data.folder import FaceFolder

    real = FaceFolder(photo_root, photo_root / "cache")
    stream = DeviceBatches(load_face_model(None), SyntheticConfig(), seed=0, real=real, fraction=0.5)
    it = stream.batch_iterator(2, 10 ** 9, 0, torch.device("cpu"))  # a billion steps: must be lazy
    kinds = ["coeffs" in b for b in (next(it) for _ in range(8))]
    assert True in kinds and False in kinds
    again = DeviceBatches(load_face_model(None), SyntheticConfig(), seed=0, real=real, fraction=0.5)
    it = again.batch_iterator(2, 10 ** 9, 0, torch.device("cpu"))
    assert ["coeffs" in next(it) for _ in range(8)] == kinds  # the same plan from the same seed
