"""The render context: which backend runs the primitives, and its per-device state.

The context is passed explicitly to :func:`~msma_engine.render.rasterize` and friends, as in
nvdiffrast; it owns the nvdiffrast ``RasterizeCudaContext`` when that backend is used so the
(slow) CUDA context is created once and reused.
"""

from __future__ import annotations

import logging
from typing import Literal

import torch

from msma_engine.errors import BackendUnavailableError

__all__ = ["RenderContext", "nvdiffrast_available"]

logger = logging.getLogger(__name__)

Backend = Literal["auto", "torch", "nvdiffrast"]


def nvdiffrast_available() -> bool:
    """True when ``nvdiffrast.torch`` imports and a CUDA device is present."""
    if not torch.cuda.is_available():
        return False
    try:
        import nvdiffrast.torch  # noqa: F401
    except ImportError:
        return False
    return True


class RenderContext:
    """Backend choice and backend state for the rendering primitives.

    Args:
        backend: ``"torch"`` (pure PyTorch, CPU and CUDA), ``"nvdiffrast"`` (CUDA only; raises
            :class:`~msma_engine.errors.BackendUnavailableError` when nvdiffrast or CUDA is
            missing) or ``"auto"`` (nvdiffrast for CUDA tensors when it imports, otherwise
            torch).
        device: CUDA device for the nvdiffrast context; ``None`` = the current device.

    Example:
        >>> ctx = RenderContext("torch")
        >>> ctx.backend_for(torch.device("cpu"))
        'torch'
    """

    def __init__(self, backend: Backend = "auto", device: torch.device | str | None = None) -> None:
        if backend not in ("auto", "torch", "nvdiffrast"):
            raise ValueError(f"backend must be 'auto', 'torch' or 'nvdiffrast', got {backend!r}")
        if backend == "nvdiffrast":
            if not torch.cuda.is_available():
                raise BackendUnavailableError("the nvdiffrast backend needs CUDA, and torch sees no CUDA device")
            try:
                import nvdiffrast.torch  # noqa: F401
            except ImportError as exc:
                raise BackendUnavailableError(
                    f"the nvdiffrast backend was requested but 'import nvdiffrast.torch' failed: {exc}"
                ) from exc
        self.backend = backend
        self.device = None if device is None else torch.device(device)
        self._nv_ctx = None

    def backend_for(self, device: torch.device) -> str:
        """The backend that serves tensors on ``device``: ``"torch"`` or ``"nvdiffrast"``."""
        if self.backend == "torch":
            return "torch"
        if self.backend == "nvdiffrast":
            if device.type != "cuda":
                raise BackendUnavailableError(
                    f"the nvdiffrast backend needs CUDA tensors, got tensors on {device}"
                )
            return "nvdiffrast"
        return "nvdiffrast" if device.type == "cuda" and nvdiffrast_available() else "torch"

    def nvdiffrast_context(self, device: torch.device):
        """The (cached) ``nvdiffrast.torch.RasterizeCudaContext`` for ``device``."""
        if self._nv_ctx is None:
            import nvdiffrast.torch as dr

            self._nv_ctx = dr.RasterizeCudaContext(device=self.device or device)
            logger.info("created nvdiffrast RasterizeCudaContext on %s", self.device or device)
        return self._nv_ctx

    def __repr__(self) -> str:
        return f"RenderContext(backend={self.backend!r}, device={self.device})"
