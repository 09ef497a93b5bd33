"""MTCNN face detector (P-Net / R-Net / O-Net) in plain PyTorch.

A re-implementation of facenet-pytorch's ``detect_face`` (Zhang et al. 2016,
the detector Deep3DFaceRecon aligns with) that loads the weights shipped in
the ``facenet-pytorch`` wheel as plain state dicts, without importing that
package (it imports torchvision, which does not install beside this torch).
Same cascade, thresholds and pyramid: ``min_face_size=20``,
``thresholds=(0.6, 0.7, 0.7)``, ``factor=0.709``, NMS 0.5/0.7 (IoU), 0.7/0.7
(IoU) and 0.7 (intersection over the smaller box) after O-Net.

The cascade runs on a downscaled copy of the photo when that loses no face
the caller wants: P-Net's pyramid starts from a copy scaled by ``min(1,
min_face_size / smallest_face, max_side / longest side)`` — by default faces
down to 32 photo pixels are found (the pipeline rejects faces under 40 px
anyway) and the longest side is at most 1280 px. R-Net and O-Net then crop
the full-resolution photo, so boxes and points keep full precision. This keeps a 1-megapixel
portrait well under 300 ms on two CPU
cores; pass ``smallest_face=20`` for facenet-pytorch's exhaustive search.

Image resampling (pyramid levels and the R-Net/O-Net crops) uses OpenCV's
area interpolation, which is several times faster on the CPU than
``torch.nn.functional.interpolate(mode="area")`` that facenet-pytorch uses
and averages the same pixel areas up to rounding at bin borders.

MTCNN's points are taken as O-Net gives them, as fractions of the crop it
saw; that is already the continuous convention of docs/CONVENTIONS.md up to
a sub-pixel offset MTCNN's own training labels leave undefined.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from msma_engine.detect.base import FaceDetection, check_image
from msma_engine.errors import BackendUnavailableError, WeightsError

__all__ = ["MTCNNDetector", "PNet", "RNet", "ONet", "nms", "mtcnn_weights_dir"]

logger = logging.getLogger(__name__)


class PNet(nn.Module):
    """Proposal network: fully convolutional, 12×12 receptive field, stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 3, H, W)`` normalised image -> (box offsets ``(B, 4, h, w)``, face probability ``(B, h, w)``)."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)[:, 1]


class RNet(nn.Module):
    """Refinement network on 24×24 crops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 3, 24, 24)`` -> (box offsets ``(B, 4)``, face probability ``(B,)``)."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        # The original Caffe weights flatten in (W, H, C) order.
        x = x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)
        x = self.prelu4(self.dense4(x))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)[:, 1]


class ONet(nn.Module):
    """Output network on 48×48 crops: box, probability and five points."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, 3, 48, 48)`` -> (box offsets ``(B, 4)``, points ``(B, 10)`` as x1..x5, y1..y5 in
        crop fractions, face probability ``(B,)``)."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)
        x = self.prelu5(self.dense5(x))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)[:, 1]


def mtcnn_weights_dir() -> Path:
    """Folder holding ``pnet.pt``, ``rnet.pt``, ``onet.pt`` inside the facenet-pytorch wheel.

    Raises:
        BackendUnavailableError: facenet-pytorch is not installed or lacks the files.
    """
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(
            "MTCNN needs the weights shipped in the 'facenet-pytorch' package, which is not installed "
            "(pip install --no-deps facenet-pytorch==2.6.0)"
        )
    for location in spec.submodule_search_locations:
        folder = Path(location) / "data"
        if all((folder / f"{n}.pt").is_file() for n in ("pnet", "rnet", "onet")):
            return folder
    raise BackendUnavailableError(
        f"facenet-pytorch is installed at {list(spec.submodule_search_locations)} but its MTCNN weights "
        "(data/pnet.pt, rnet.pt, onet.pt) are missing; reinstall it"
    )


@functools.lru_cache(maxsize=1)
def _load_networks() -> tuple[PNet, RNet, ONet]:
    folder = mtcnn_weights_dir()
    nets = (PNet(), RNet(), ONet())
    for net, name in zip(nets, ("pnet", "rnet", "onet")):
        path = folder / f"{name}.pt"
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except (OSError, RuntimeError, KeyError) as exc:
            raise WeightsError(f"{path}: cannot load MTCNN {name} weights ({exc})") from exc
        # channels_last runs these thin convolutions ~1.5x faster on the CPU (oneDNN), and
        # images converted from (H, W, 3) arrays already have that layout.
        net.eval().to(memory_format=torch.channels_last)
        for p in net.parameters():
            p.requires_grad_(False)
    return nets


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float, mode: str = "union") -> torch.Tensor:
    """Greedy non-maximum suppression.

    Args:
        boxes: ``(N, 4)`` ``x0, y0, x1, y1``.
        scores: ``(N,)``.
        threshold: Boxes overlapping a kept, higher-scoring box by more than this are dropped.
        mode: ``"union"`` (intersection over union) or ``"min"`` (intersection over the smaller area).

    Returns:
        ``(K,)`` int64 indices of the kept boxes, by decreasing score.
    """
    if mode not in ("union", "min"):
        raise ValueError(f"nms mode must be 'union' or 'min', got {mode!r}")
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    x0, y0, x1, y1 = boxes.unbind(1)
    areas = (x1 - x0).clamp(min=0) * (y1 - y0).clamp(min=0)
    order = torch.argsort(scores, descending=True)
    keep = []
    while order.numel() > 0:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = (torch.minimum(x1[i], x1[rest]) - torch.maximum(x0[i], x0[rest])).clamp(min=0)
        h = (torch.minimum(y1[i], y1[rest]) - torch.maximum(y0[i], y0[rest])).clamp(min=0)
        inter = w * h
        if mode == "union":
            overlap = inter / (areas[i] + areas[rest] - inter).clamp(min=1e-12)
        else:
            overlap = inter / torch.minimum(areas[i], areas[rest]).clamp(min=1e-12)
        order = rest[overlap <= threshold]
    return torch.stack(keep)


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Grow ``(N, 4+)`` boxes to squares about their centres (MTCNN's ``rerec``)."""
    out = boxes.clone()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    out[:, 0] = boxes[:, 0] + 0.5 * (w - side)
    out[:, 1] = boxes[:, 1] + 0.5 * (h - side)
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Apply box regression ``(N, 4)`` in units of the (inclusive) box size (MTCNN's ``bbreg``)."""
    out = boxes.clone()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out[:, 0] = boxes[:, 0] + offsets[:, 0] * w
    out[:, 1] = boxes[:, 1] + offsets[:, 1] * h
    out[:, 2] = boxes[:, 2] + offsets[:, 2] * w
    out[:, 3] = boxes[:, 3] + offsets[:, 3] * h
    return out


def _normalise(img: np.ndarray) -> torch.Tensor:
    """``(..., H, W, 3)`` float32 pixels in [0, 255] -> ``(B, 3, H, W)`` MTCNN input in [-1, 1]."""
    t = torch.from_numpy((np.asarray(img, dtype=np.float32) - 127.5) * 0.0078125)
    return t.reshape(-1, *img.shape[-3:]).permute(0, 3, 1, 2)  # a channels_last view, no copy


def _crops(img: np.ndarray, boxes: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut boxes (clamped to the image, as facenet-pytorch) and resize them to ``size``².

    Args:
        img: ``(H, W, 3)`` image (any dtype; crops are resampled in float32).
        boxes: ``(N, 4+)`` boxes in MTCNN's 1-based inclusive convention.

    Returns:
        ``(K, 3, size, size)`` normalised crops and a ``(N,)`` bool mask of the boxes that were non-empty.
    """
    h, w = img.shape[:2]
    b = boxes[:, :4].trunc().to(torch.int64)
    x = b[:, 0].clamp(min=1)
    y = b[:, 1].clamp(min=1)
    ex = b[:, 2].clamp(max=w)
    ey = b[:, 3].clamp(max=h)
    valid = (ey > y - 1) & (ex > x - 1)
    crops = [
        cv2.resize(
            img[y[k] - 1 : ey[k], x[k] - 1 : ex[k]].astype(np.float32), (size, size), interpolation=cv2.INTER_AREA
        )
        for k in torch.nonzero(valid).flatten().tolist()
    ]
    if not crops:
        return torch.zeros(0, 3, size, size), valid
    return _normalise(np.stack(crops)), valid


class MTCNNDetector:
    """Five-point face detector.

    Args:
        min_face_size: Smallest face the cascade searches for, in pixels of the image it runs on
            (facenet-pytorch's ``min_face_size``).
        thresholds: Face-probability thresholds of P-Net, R-Net, O-Net.
        factor: Scale step of the image pyramid.
        smallest_face: Smallest face wanted, in photo pixels; the photo is downscaled by
            ``min_face_size / smallest_face`` when that is below 1.
        max_side: Longest side of the image the cascade runs on.

    Raises:
        BackendUnavailableError: facenet-pytorch's weight files are not installed.
    """

    name = "mtcnn"

    def __init__(
        self,
        min_face_size: float = 20.0,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        smallest_face: float = 32.0,
        max_side: int = 1280,
    ) -> None:
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        if min_face_size < 12:
            raise ValueError(f"min_face_size must be at least 12 px, got {min_face_size}")
        self.min_face_size = float(min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = float(factor)
        self.smallest_face = float(smallest_face)
        self.max_side = int(max_side)
        self.pnet, self.rnet, self.onet = _load_networks()

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Detect faces in ``(H, W, 3)`` ``uint8`` RGB; returns detections by decreasing score."""
        image = check_image(image)
        h0, w0 = image.shape[:2]
        s = min(1.0, self.min_face_size / max(self.smallest_face, 1e-6), self.max_side / max(h0, w0))
        small = image
        if s < 1.0:
            # Shrinking the uint8 photo first keeps a 16-megapixel photo cheap; the area
            # average loses at most half a grey level.
            small = cv2.resize(image, (max(1, round(w0 * s)), max(1, round(h0 * s))), interpolation=cv2.INTER_AREA)
        small = small.astype(np.float32)
        scale = torch.tensor([small.shape[1] / w0, small.shape[0] / h0] * 2)
        with torch.inference_mode():
            proposals = self._propose(small)
            # Only P-Net needs the pyramid; R-Net and O-Net crop the full-resolution photo.
            proposals[:, :4] /= scale
            boxes, points = self._refine(image, proposals)
        detections = [
            FaceDetection(box=box[:4], score=float(box[4]), points5=pts, source=self.name)
            for box, pts in zip(boxes.double().numpy(), points.double().numpy())
        ]
        detections.sort(key=lambda d: -d.score)
        logger.debug("mtcnn: %d face(s) in %dx%d image", len(detections), w0, h0)
        return detections

    def _propose(self, img: np.ndarray) -> torch.Tensor:
        """Stage 1, P-Net over the pyramid of ``(H, W, 3)`` float32; returns ``(N, 5)`` square boxes + score."""
        h, w = img.shape[:2]
        m = 12.0 / self.min_face_size
        min_side = min(h, w) * m
        scale = m
        candidates = []
        while min_side >= 12:
            data = cv2.resize(img, (int(w * scale + 1), int(h * scale + 1)), interpolation=cv2.INTER_AREA)
            reg, prob = self.pnet(_normalise(data))
            cand = self._proposals(reg[0], prob[0], scale, self.thresholds[0])
            if len(cand):
                candidates.append(cand[nms(cand[:, :4], cand[:, 4], 0.5)])
            scale *= self.factor
            min_side *= self.factor
        if not candidates:
            return torch.zeros(0, 5)
        cand = torch.cat(candidates)
        cand = cand[nms(cand[:, :4], cand[:, 4], 0.7)]
        bw = cand[:, 2] - cand[:, 0]
        bh = cand[:, 3] - cand[:, 1]
        boxes = torch.stack(
            [
                cand[:, 0] + cand[:, 5] * bw,
                cand[:, 1] + cand[:, 6] * bh,
                cand[:, 2] + cand[:, 7] * bw,
                cand[:, 3] + cand[:, 8] * bh,
                cand[:, 4],
            ],
            dim=1,
        )
        return _square(boxes)

    def _refine(self, img: np.ndarray, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stages 2-3 on ``(H, W, 3)`` uint8; returns ``(N, 5)`` boxes + score and ``(N, 5, 2)`` points."""
        empty = (torch.zeros(0, 5), torch.zeros(0, 5, 2))
        if len(boxes) == 0:
            return empty

        # Stage 2: R-Net on 24×24 crops.
        data, valid = _crops(img, boxes, 24)
        boxes = boxes[valid]
        if len(boxes) == 0:
            return empty
        reg, prob = self.rnet(data)
        keep = prob > self.thresholds[1]
        boxes = torch.cat([boxes[keep, :4], prob[keep, None]], dim=1)
        reg = reg[keep]
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
        boxes = _square(_regress(boxes[pick], reg[pick]))
        if len(boxes) == 0:
            return empty

        # Stage 3: O-Net on 48×48 crops, with the five points.
        data, valid = _crops(img, boxes, 48)
        boxes = boxes[valid]
        if len(boxes) == 0:
            return empty
        reg, pts, prob = self.onet(data)
        keep = prob > self.thresholds[2]
        boxes = torch.cat([boxes[keep, :4], prob[keep, None]], dim=1)
        reg, pts = reg[keep], pts[keep]
        bw = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        bh = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        px = bw * pts[:, :5] + boxes[:, 0:1] - 1
        py = bh * pts[:, 5:] + boxes[:, 1:2] - 1
        points = torch.stack([px, py], dim=2)
        boxes = _regress(boxes, reg)
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7, mode="min")
        return boxes[pick], points[pick]

    @staticmethod
    def _proposals(reg: torch.Tensor, prob: torch.Tensor, scale: float, threshold: float) -> torch.Tensor:
        """P-Net map cells above ``threshold`` as ``(N, 9)``: box (4), score, regression (4)."""
        stride, cell = 2, 12
        mask = prob >= threshold
        yx = torch.nonzero(mask).to(reg.dtype)
        if len(yx) == 0:
            return torch.zeros(0, 9)
        xy = yx.flip(1)
        q1 = torch.floor((stride * xy + 1) / scale)
        q2 = torch.floor((stride * xy + cell) / scale)
        return torch.cat([q1, q2, prob[mask][:, None], reg[:, mask].T], dim=1)
