"""dlib's ResNet face descriptor in PyTorch: the .dat parser, the network, and the embedder fallback.

A tiny network written byte for byte in dlib's serialisation checks the parser and the
layer semantics (input scaling, padding rules, zero-padded residual sums) against a
forward pass spelled out here; truncated/corrupt files must raise WeightsError naming the
file. With ``face-recognition-models`` installed, the real model is checked on photos
(same person < 0.6 < different people, dlib's threshold); with ``dlib`` (the ``dlib-bin``
wheel) also installed, against dlib's own descriptors.
"""

from __future__ import annotations

import importlib.util
import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from msma_engine.errors import BackendUnavailableError, WeightsError
from shared_data import PHOTOS
from training import identity_dlib
from training.identity import ARCFACE_ENV, IdentityEmbedder, iresnet50, load_identity_embedder
from training.identity_dlib import (
    CHIP_BOX_IN_CROP,
    DlibResNet,
    LayerSpec,
    face_recognition_model_path,
    load_dlib_face_descriptor,
    parse_dlib_net,
)
from msma_engine.losses import perceptual_loss

HAVE_MODELS = importlib.util.find_spec("face_recognition_models") is not None
needs_models = pytest.mark.skipif(not HAVE_MODELS, reason="face-recognition-models is not installed "
                                  "(pip install face-recognition-models==0.3.0)")

MEAN = (122.782, 117.001, 104.298)


# --- a tiny network in dlib's exact serialisation -------------------------------------------

class _DlibWriter:
    """dlib's serialize.h encodings (pack_int, float_details, bool, string, tensors)."""

    def __init__(self) -> None:
        self.out = bytearray()

    def int(self, v: int) -> None:
        mag = abs(v)
        raw = mag.to_bytes(max(1, (mag.bit_length() + 7) // 8), "little")
        self.out += bytes([len(raw) | (0x80 if v < 0 else 0)]) + raw

    def float(self, x: float) -> None:
        # float_details of a float: 24-bit mantissa from frexp, low zero bytes shifted off
        m, e = math.frexp(float(np.float32(x)))
        mantissa, exponent = int(m * (1 << 24)), e - 24
        for _ in range(8):
            if mantissa & 0xFF:
                break
            mantissa >>= 8
            exponent += 8
        self.int(mantissa)
        self.int(exponent)

    def bool(self, b: bool) -> None:
        self.out += b"1" if b else b"0"

    def string(self, s: str) -> None:
        self.int(len(s))
        self.out += s.encode()

    def tensor(self, a: np.ndarray, version: int = 2) -> None:
        a = np.asarray(a, np.float32)
        shape = tuple(a.shape) + (1,) * (4 - a.ndim)
        self.int(version)
        for d in shape:
            self.int(d)
        if version == 2:
            self.out += a.astype("<f4").tobytes()
        else:
            for v in a.reshape(-1):
                self.float(v)

    def empty_tensor(self) -> None:
        self.tensor(np.zeros((0, 0, 0, 0), np.float32))

    def alias(self, *dims: int) -> None:
        self.int(1)
        for d in dims + (1,) * (4 - len(dims)):
            self.int(d)


TINY_SPEC = [
    LayerSpec("loss_metric"), LayerSpec("fc", (3, False)), LayerSpec("avg_pool", (0, 0, 1, 1)), LayerSpec("relu"),
    LayerSpec("add_prev", (2,)), LayerSpec("avg_pool", (2, 2, 2, 2)), LayerSpec("skip", (1,)), LayerSpec("tag", (2,)),
    LayerSpec("affine"), LayerSpec("con", (4, 3, 3, 2, 2)), LayerSpec("tag", (1,)), LayerSpec("relu"),
    LayerSpec("affine"), LayerSpec("con", (2, 3, 3, 1, 1)), LayerSpec("input_rgb_image_sized", (8, 8)),
]


def _tiny_params(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    return {"w1": f(2, 3, 3, 3), "b1": f(2), "g1": f(2), "be1": f(2),
            "w2": f(4, 2, 3, 3), "b2": f(4), "g2": f(4), "be2": f(4), "fc": f(4, 3)}


def _write_tiny(p: dict[str, np.ndarray]) -> bytes:
    """TINY_SPEC as dlib writes it: loss, headers outside-in, input, details inside-out."""
    w = _DlibWriter()
    w.int(1)  # add_loss_layer version
    w.string("loss_metric_2")
    w.float(0.04)
    w.float(0.6)
    body = TINY_SPEC[1:-1]
    for i, s in enumerate(body):
        w.int(1 if s.kind in ("tag", "skip") else 3 if i == len(body) - 1 else 2)
    w.string("input_rgb_image_sized")
    for m in MEAN:
        w.float(m)
    w.int(8)
    w.int(8)

    def con(weight, bias, stride, pad):
        n, k, nr, nc = weight.shape
        w.string("con_4")
        w.tensor(np.concatenate([weight.reshape(-1), bias])[:, None])
        for v in (n, nr, nc, stride, stride, pad, pad):
            w.int(v)
        w.alias(n, k, nr, nc)
        w.alias(1, n)
        for v in (1.0, 1.0, 1.0, 0.0):
            w.float(v)

    def affine(g, b):
        w.string("affine_")
        w.tensor(np.concatenate([g, b])[:, None])
        w.alias(1, len(g))
        w.alias(1, len(g))
        w.int(0)  # CONV_MODE

    def pool(name, nr, stride):
        w.string(name)
        for v in (nr, nr, stride, stride, 0, 0):
            w.int(v)

    details = {
        13: lambda: con(p["w1"], p["b1"], 1, 1), 12: lambda: affine(p["g1"], p["be1"]), 11: lambda: w.string("relu_"),
        9: lambda: con(p["w2"], p["b2"], 2, 0), 8: lambda: affine(p["g2"], p["be2"]),
        5: lambda: pool("avg_pool_2", 2, 2), 4: lambda: w.string("add_prev_"), 3: lambda: w.string("relu_"),
        2: lambda: pool("avg_pool_2", 0, 1),
    }

    def fc():
        w.string("fc_2")
        w.int(3)
        w.int(4)
        w.tensor(p["fc"], version=1)  # the portable per-element float encoding
        w.alias(4, 3)
        w.alias(0, 0, 0, 0)
        w.int(1)  # FC_NO_BIAS
        for v in (1.0, 1.0, 1.0, 0.0):
            w.float(v)

    details[1] = fc
    for idx in range(len(TINY_SPEC) - 2, 0, -1):
        if TINY_SPEC[idx].kind in ("tag", "skip"):
            continue
        details[idx]()
        w.bool(True)
        w.bool(False)
        w.bool(False)
        w.empty_tensor()
        w.empty_tensor()
        if idx == len(TINY_SPEC) - 2:  # the layer on the input: grad_final, sample_expansion_factor
            w.empty_tensor()
            w.int(1)
        else:
            w.empty_tensor()  # params_grad
    return bytes(w.out)


def _tiny_reference(p: dict[str, np.ndarray], images: torch.Tensor) -> torch.Tensor:
    """TINY_SPEC's forward pass written out by hand."""
    t = {k: torch.from_numpy(v) for k, v in p.items()}
    x = (images - torch.tensor(MEAN).view(1, 3, 1, 1)) / 256.0
    tag1 = torch.relu(t["g1"].view(1, -1, 1, 1) * F.conv2d(x, t["w1"], t["b1"], 1, 1) + t["be1"].view(1, -1, 1, 1))
    branch = t["g2"].view(1, -1, 1, 1) * F.conv2d(tag1, t["w2"], t["b2"], 2, 0) + t["be2"].view(1, -1, 1, 1)
    shortcut = F.avg_pool2d(tag1, 2, 2)  # (B, 2, 4, 4); branch is (B, 4, 3, 3)
    out = torch.zeros(images.shape[0], 4, 4, 4)
    out[:, :2] += shortcut
    out[:, :, :3, :3] += branch
    return torch.relu(out).mean((2, 3)) @ t["fc"]


@pytest.fixture
def tiny(tmp_path):
    params = _tiny_params()
    path = tmp_path / "tiny.dat"
    path.write_bytes(_write_tiny(params))
    return path, params


def test_tiny_network_parses_and_matches_dlib_semantics(tiny):
    path, params = tiny
    net = parse_dlib_net(path, TINY_SPEC)
    assert net.input_size == (8, 8) and net.mean_rgb == pytest.approx(MEAN, abs=1e-4)
    assert net.loss == pytest.approx({"margin": 0.04, "distance_threshold": 0.6})
    assert [layer.spec.kind for layer in net.layers] == [s.kind for s in reversed(TINY_SPEC[1:-1])]
    np.testing.assert_array_equal(net.layers[-1].params["weight"], params["fc"])  # version-1 floats are exact
    model = DlibResNet(net)
    images = torch.rand(2, 3, 8, 8) * 255
    torch.testing.assert_close(model(images), _tiny_reference(params, images), rtol=1e-5, atol=1e-5)


def test_truncated_file_is_a_weights_error_naming_it(tiny):
    path, _ = tiny
    data = path.read_bytes()
    for cut in sorted({1, 5, 40, len(data) // 3, len(data) // 2, len(data) - 10, len(data) - 1}):
        path.write_bytes(data[:cut])
        with pytest.raises(WeightsError, match="tiny.dat"):
            parse_dlib_net(path, TINY_SPEC)


def test_corrupt_or_foreign_files_are_weights_errors(tiny, tmp_path):
    path, _ = tiny
    data = path.read_bytes()
    assert data.count(b"\x05relu_100") == 2
    cases = {
        "corrupt integer control byte": data[:2] + b"\x7f" + data[3:],  # length of "loss_metric_2"
        "expected layer 'relu_'": data.replace(b"\x05relu_", b"\x05relX_", 1),  # a layer name
        "corrupt bool": data.replace(b"\x05relu_100", b"\x05relu_1x0", 1),  # a layer's state flags
        "unexpected bytes after the network": data + b"\x00",
    }
    for what, bad in cases.items():
        path.write_bytes(bad)
        with pytest.raises(WeightsError, match="tiny.dat") as info:
            parse_dlib_net(path, TINY_SPEC)
        assert what in str(info.value), str(info.value)
    path.write_bytes(data)
    other = list(TINY_SPEC)
    other[9] = LayerSpec("con", (8, 3, 3, 2, 2))  # another architecture
    with pytest.raises(WeightsError, match="num_filters is 4 in the file, the network needs 8"):
        parse_dlib_net(path, other)
    with pytest.raises(WeightsError, match="missing.dat"):
        parse_dlib_net(tmp_path / "missing.dat", TINY_SPEC)


# --- the real model -----------------------------------------------------------------------

def _expected_parameter_count() -> int:
    """5.6 M: conv 7×7 + 29 3×3 convolutions with biases, 30 affines, fc 256 → 128 without bias."""
    conv = lambda cin, cout, k: cout * cin * k * k + cout  # noqa: E731
    affine = lambda c: 2 * c  # noqa: E731
    total = conv(3, 32, 7) + affine(32)
    cin = 32
    for width, blocks, down in ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True)):
        for b in range(blocks):
            first_in = cin if (b == 0 and down) else width
            total += conv(first_in, width, 3) + conv(width, width, 3) + 2 * affine(width)
        cin = width
    return total + 256 * 128


@needs_models
def test_real_model_loads_with_the_expected_parameters():
    model = load_dlib_face_descriptor()
    assert sum(p.numel() for p in model.parameters()) == _expected_parameter_count() == 5_614_592
    assert model.mean.flatten().tolist() == pytest.approx(MEAN, abs=1e-3)
    assert model.loss["distance_threshold"] == pytest.approx(0.6)
    with torch.no_grad():
        assert model(torch.full((2, 3, 150, 150), 128.0)).shape == (2, 128)


def _load(name: str) -> np.ndarray:
    if name == "astronaut":
        import skimage.data

        return skimage.data.astronaut()
    from msma_engine.image_io import load_image

    path = PHOTOS / f"{name}_official_portrait.jpg"
    if not path.exists():
        pytest.skip(f"{path} not present")
    return load_image(path).pixels


def _aligned_crop(pixels: np.ndarray) -> np.ndarray:
    """The trainer's 224 crop: the engine's detection, landmarks and Deep3DFaceRecon alignment."""
    from msma_engine.align import align_crop, template_from_landmarks68
    from msma_engine.detect import detect_faces, five_from_68, landmarks68, pick_face
    from msma_engine.face_model import load_face_model

    model = load_face_model(None)
    template = template_from_landmarks68(model.mean_shape[model.landmark_indices].double().numpy())
    det = pick_face(detect_faces(pixels), "largest")[0]
    return align_crop(five_from_68(landmarks68(pixels, det).points), template).warp(pixels)


def _jittered(pixels: np.ndarray) -> np.ndarray:
    """The astronaut mirrored, shrunk to 70 % and moved off-centre on a grey canvas."""
    import cv2

    small = cv2.resize(pixels[:, ::-1], None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    canvas = np.full((560, 600, 3), 90, np.uint8)
    canvas[70:70 + small.shape[0], 150:150 + small.shape[1]] = small
    return canvas


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    if not HAVE_MODELS:
        pytest.skip("face-recognition-models is not installed")
    torch.set_num_threads(1)
    astronaut = _load("astronaut")
    images = {"astronaut": astronaut, "astronaut_jittered": _jittered(astronaut),
              "obama": _load("obama"), "biden": _load("biden")}
    return {name: _aligned_crop(img) for name, img in images.items()}


@pytest.fixture(scope="module")
def dlib_embedder() -> IdentityEmbedder:
    if not HAVE_MODELS:
        pytest.skip("face-recognition-models is not installed")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(ARCFACE_ENV, raising=False)
        emb = load_identity_embedder()
    assert isinstance(emb.net, DlibResNet)
    return emb


def _to_tensor(crops: list[np.ndarray]) -> torch.Tensor:
    return torch.stack([torch.from_numpy(c).permute(2, 0, 1).float() / 255.0 for c in crops])


def _descriptors(emb: IdentityEmbedder, crops: list[np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        return emb.net(emb.prepare(_to_tensor(crops))).numpy()


def test_same_person_is_closer_than_dlibs_threshold_and_others_are_not(photos, dlib_embedder):
    names = list(photos)
    d = _descriptors(dlib_embedder, [photos[n] for n in names])
    dist = {(a, b): float(np.linalg.norm(d[i] - d[j]))
            for i, a in enumerate(names) for j, b in enumerate(names) if i < j}
    same = dist[("astronaut", "astronaut_jittered")]
    different = [v for k, v in dist.items() if k != ("astronaut", "astronaut_jittered")]
    assert same < 0.6 < min(different), dist


def test_gradients_reach_the_image_inside_the_chip_box(photos, dlib_embedder):
    real = _to_tensor([photos["obama"], photos["biden"]])
    rendered = (real + 0.05 * torch.randn_like(real)).clamp(0, 1).requires_grad_(True)
    loss = perceptual_loss(dlib_embedder(rendered), dlib_embedder(real))
    loss.backward()
    g = rendered.grad
    assert loss.item() > 0 and torch.isfinite(g).all()
    x0, y0, x1, y1 = (round(b * 224) for b in CHIP_BOX_IN_CROP)
    inside = g[..., y0:y1, x0:x1]
    assert inside.abs().amax(dim=(1, 2, 3)).min() > 0  # every image gets a gradient
    outside = g.clone()
    outside[..., y0:y1, x0:x1] = 0
    assert outside.abs().max() == 0  # nothing outside the box dlib's chip covers


# --- the embedder's fallback order ---------------------------------------------------------

def _hide_face_recognition_models(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(identity_dlib.importlib.util, "find_spec",
                        lambda name, *a: None if name == "face_recognition_models" else real(name, *a))


def test_neither_embedder_is_reported_with_both_options(monkeypatch):
    monkeypatch.delenv(ARCFACE_ENV, raising=False)
    _hide_face_recognition_models(monkeypatch)
    with pytest.raises(BackendUnavailableError) as info:
        load_identity_embedder()
    assert ARCFACE_ENV in str(info.value) and "face-recognition-models" in str(info.value)
    with pytest.raises(BackendUnavailableError, match="face-recognition-models"):
        face_recognition_model_path()


@needs_models
def test_dlib_is_the_default_and_is_logged(monkeypatch, caplog):
    monkeypatch.delenv(ARCFACE_ENV, raising=False)
    with caplog.at_level(logging.INFO, logger="training.identity"):
        emb = load_identity_embedder(None)
    assert isinstance(emb.net, DlibResNet) and "dlib" in caplog.text
    assert emb(torch.rand(1, 3, 224, 224)).shape == (1, 128)


@needs_models
def test_arcface_file_wins_over_dlib(monkeypatch, tmp_path, caplog):
    torch.save(iresnet50().state_dict(), tmp_path / "backbone.pth")
    monkeypatch.setenv(ARCFACE_ENV, str(tmp_path / "backbone.pth"))
    with caplog.at_level(logging.INFO, logger="training.identity"):
        emb = load_identity_embedder()
    assert not isinstance(emb.net, DlibResNet) and "ArcFace" in caplog.text
    # a named file that does not exist is an error, not a silent switch to dlib
    with pytest.raises(BackendUnavailableError, match="not found"):
        load_identity_embedder(tmp_path / "other.pth")


# --- against dlib itself (dlib-bin) -----------------------------------------------------------

def _dlib():
    try:
        import dlib
    except ImportError as exc:
        pytest.skip(f"dlib is not importable ({exc}); pip install dlib-bin to compare with dlib itself")
    return dlib


def test_matches_dlib_on_the_same_chips(photos, dlib_embedder):
    dlib = _dlib()
    rec = dlib.face_recognition_model_v1(str(face_recognition_model_path()))
    names = ["astronaut", "obama", "biden"]
    # The chips our embedder makes from the aligned crops, as uint8 images fed to both.
    with torch.no_grad():
        chips = dlib_embedder.prepare(_to_tensor([photos[n] for n in names])).round().clamp(0, 255)
    chips_u8 = [np.ascontiguousarray(c.permute(1, 2, 0).numpy().astype(np.uint8)) for c in chips]
    with torch.no_grad():
        ours = dlib_embedder.net(chips).numpy()
    theirs = np.array([np.array(rec.compute_face_descriptor(c)) for c in chips_u8])
    assert np.abs(ours - theirs).max() <= 1e-4


def test_chip_box_frames_faces_like_dlibs_own_chips(photos, dlib_embedder):
    dlib = _dlib()
    model_dir = face_recognition_model_path().parent
    rec = dlib.face_recognition_model_v1(str(face_recognition_model_path()))
    predictor = dlib.shape_predictor(str(model_dir / "shape_predictor_5_face_landmarks.dat"))
    detector = dlib.get_frontal_face_detector()
    whole = IdentityEmbedder(dlib_embedder.net, 150, None, (0.0, 255.0))
    for name in ("astronaut", "obama", "biden"):
        img = _load(name)
        face = max(detector(img, 1), key=lambda r: r.area())
        chip = dlib.get_face_chip(img, predictor(img, face), 150, 0.25)
        reference = np.array(rec.compute_face_descriptor(chip))
        boxed = np.linalg.norm(_descriptors(dlib_embedder, [photos[name]])[0] - reference)
        full = np.linalg.norm(_descriptors(whole, [photos[name]])[0] - reference)
        # Measured 0.53 / 0.17 / 0.45 with the box, 0.74 / 0.38 / 0.53 for the whole crop.
        assert boxed < min(full, 0.6), (name, boxed, full)
