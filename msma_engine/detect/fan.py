"""Optional 68-point landmarker: FAN (Bulat & Tzimiropoulos 2017) from ``face-alignment``.

The paper's landmark detector. ``face-alignment`` downloads its weights on
first use, which this project never does: the backend is available only when
the package imports **and** a 2D-FAN-4 weight file is already in the torch hub
cache (``torch.hub.get_dir()/checkpoints``): ``2DFAN4-*.pth.tar`` (state
dict, face-alignment ≥ 1.5) or ``2DFAN4-*.zip`` (TorchScript, 1.3-1.4). Only
the landmark network is used; faces come from our own detector, so the
package's face-detector weights are not needed. The crop follows
``FaceAlignment.get_landmarks_from_image``: centre 12 % of the box height above
the box centre, scale ``(w + h) / 195``, 256×256 input, no flip averaging.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from msma_engine.detect.base import FaceDetection, check_image
from msma_engine.errors import BackendUnavailableError

__all__ = ["FANLandmarker", "clear_cache", "fan_weights_path"]

logger = logging.getLogger(__name__)

_CENTRE_SHIFT = 0.12
_REFERENCE_SCALE = 195.0


def fan_weights_path() -> Path:
    """The cached 2D-FAN-4 weight file (the newest by name if several).

    Raises:
        BackendUnavailableError: none is cached (the reason names the folder searched).
    """
    import torch

    folder = Path(torch.hub.get_dir()) / "checkpoints"
    found = sorted(p for p in folder.glob("2DFAN4*") if p.suffix in (".tar", ".zip", ".pth")) if folder.is_dir() else []
    if not found:
        raise BackendUnavailableError(
            f"FAN weights (2DFAN4-*.pth.tar or .zip) are not in {folder}; face-alignment would download them, "
            "which this tool never does — put the file there to enable FAN"
        )
    return found[-1]


@functools.lru_cache(maxsize=1)
def _load():
    try:
        from face_alignment import utils as fa_utils
    except ImportError as exc:
        raise BackendUnavailableError(f"the FAN landmarker needs the 'face-alignment' package: {exc}") from exc
    import torch

    path = fan_weights_path()
    try:
        if path.suffix == ".zip":
            net = torch.jit.load(str(path), map_location="cpu")
        else:
            from face_alignment.models import FAN

            net = FAN(4)
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (RuntimeError, ValueError, ImportError, OSError) as exc:
        raise BackendUnavailableError(f"{path}: not a loadable 2D-FAN-4 weight file ({exc})") from exc
    return fa_utils, net.eval()


def clear_cache() -> None:
    """Forget the loaded network, so the next :class:`FANLandmarker` reads the weight file again."""
    _load.cache_clear()


class FANLandmarker:
    """68 iBUG landmarks from 2D-FAN-4 (heat-map regression on a 256×256 crop).

    Raises:
        BackendUnavailableError: face-alignment or its cached weights are missing.
    """

    name = "fan"

    def __init__(self) -> None:
        self._utils, self._net = _load()

    def landmarks(self, image: np.ndarray, detection: FaceDetection) -> np.ndarray:
        """``(68, 2)`` iBUG landmarks in image pixels of the face in ``detection``."""
        import torch

        image = check_image(image)
        x0, y0, x1, y1 = detection.box
        centre = np.array([0.5 * (x0 + x1), 0.5 * (y0 + y1) - _CENTRE_SHIFT * (y1 - y0)])
        scale = float((x1 - x0) + (y1 - y0)) / _REFERENCE_SCALE
        crop = self._utils.crop(image, centre, scale)
        inp = torch.from_numpy(crop.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
        with torch.inference_mode():
            out = self._net(inp)
        heatmaps = (out[-1] if isinstance(out, (list, tuple)) else out).float().cpu().numpy()
        _, points, _ = self._utils.get_preds_fromhm(heatmaps, centre, scale)
        # face-alignment returns integer-pixel-index coordinates; +0.5 moves them to pixel centres.
        return np.asarray(points, dtype=np.float64).reshape(68, 2) + 0.5
