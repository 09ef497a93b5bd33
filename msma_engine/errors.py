"""Exceptions the engine raises for bad user input.

Every user-facing failure raises a subclass of :class:`MSMAError` whose message
names the offending file, value or shape, so the CLI and the Blender extension
can show one line to the user instead of a traceback.
"""

__all__ = [
    "MSMAError",
    "ModelFileError",
    "ImageError",
    "NoFaceError",
    "FaceTooSmallError",
    "MultipleFacesError",
    "WeightsError",
    "ShapeError",
    "BackendUnavailableError",
    "ImplausibleFaceError",
    "UsageError",
    "CheckpointError",
]


class MSMAError(Exception):
    """Base class of every error the engine reports to users."""


class ModelFileError(MSMAError):
    """A face-model file is missing, truncated or not in the expected format."""


class ImageError(MSMAError):
    """An image cannot be read or has an unusable layout."""


class NoFaceError(MSMAError):
    """No face was detected in an image."""


class FaceTooSmallError(MSMAError):
    """A face was found but is too small to reconstruct."""


class MultipleFacesError(MSMAError):
    """Several faces were found where exactly one was required."""


class WeightsError(MSMAError):
    """Network weights are missing or do not fit the network / face model."""


class ShapeError(MSMAError, ValueError):
    """A tensor argument has the wrong shape; the message gives the actual shape."""


class BackendUnavailableError(MSMAError):
    """An optional backend (nvdiffrast, FAN, ArcFace, ...) is not installed or has no weights."""


class ImplausibleFaceError(MSMAError):
    """The landmarks found do not form an upright face (e.g. an upside-down or mirrored photo)."""


class UsageError(MSMAError):
    """Command-line arguments or the output location cannot be used; nothing was processed."""


class CheckpointError(MSMAError):
    """A training checkpoint is missing, truncated, unsafe to load or from another run."""
