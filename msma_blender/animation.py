"""Animation from an image sequence: one identity, keyframed expressions and head pose.

Each frame is reconstructed on its own; per-frame fits jitter, so the expression
weights, angles and translations are smoothed over time with a centred Gaussian
(``sigma`` in frames; the kernel is truncated at 3σ and renormalised at the sequence ends,
so there is no lag and no pull towards zero at the ends). ``sigma = 0`` disables smoothing.

The identity is the first frame's neutral shape or the mean of all frames' neutral shapes
(the model is linear, so the mean shape is the shape of the mean identity coefficients).
"""

from __future__ import annotations

import logging

import bpy
import numpy as np

from msma_engine.video import gaussian_smooth  # one smoothing for engine and Blender (re-exported)

from . import conversion
from .face_builder import BuildOptions, build_face_object

__all__ = ["gaussian_smooth", "identity_shape", "build_animated_face"]

log = logging.getLogger(__name__)


def identity_shape(results: list, mode: str = "FIRST") -> np.ndarray:
    """Neutral shape ``(V, 3)`` (engine model frame, metres) for the whole sequence.

    Args:
        results: per-frame FaceResults.
        mode: ``"FIRST"`` (first frame's identity) or ``"MEAN"`` (mean over frames).
    """
    if mode == "FIRST":
        return np.asarray(results[0].vertices_neutral, dtype=np.float64)
    if mode == "MEAN":
        return np.mean([np.asarray(r.vertices_neutral, dtype=np.float64) for r in results], axis=0)
    raise ValueError(f"identity mode must be 'FIRST' or 'MEAN', got {mode!r}")


def build_animated_face(results: list, collection: bpy.types.Collection,
                        options: BuildOptions | None = None, scene: bpy.types.Scene | None = None,
                        frame_start: int = 1, sigma: float = 1.0, identity: str = "FIRST") -> bpy.types.Object:
    """One face object animated over the frames of ``results``.

    Args:
        results: FaceResults of consecutive frames (one face each, one face model), in order.
        collection: where the object goes.
        options: build options (texture and camera come from the first frame).
        scene: scene whose frame range is set to the animation's frames (optional).
        frame_start: frame number of the first result.
        sigma: Gaussian smoothing in frames.
        identity: ``"FIRST"`` or ``"MEAN"``.

    Returns:
        The object, with keyframes on every expression key value, rotation and location.
    """
    from mathutils import Matrix

    from msma_engine.geometry import euler_to_rotation
    import torch

    if not results:
        raise ValueError("no frames to animate")
    weights = gaussian_smooth(np.stack([r.expression_weights for r in results]), sigma)
    angles = gaussian_smooth(np.unwrap(np.stack([r.angles for r in results]), axis=0), sigma)
    trans = gaussian_smooth(np.stack([r.translation for r in results]), sigma)
    if any(r.topology is not results[0].topology for r in results):
        raise ValueError("the frames of one animation must come from one face model")
    obj = build_face_object(results[0], collection, options, scene=scene,
                            vertices_neutral=identity_shape(results, identity), all_expression_values=weights)
    keys = obj.data.shape_keys.key_blocks[1:]
    rotations = euler_to_rotation(torch.as_tensor(angles)).numpy()
    prev_euler = None
    for t in range(len(results)):
        frame = frame_start + t
        for k, key in enumerate(keys):
            key.value = float(weights[t, k])
            key.keyframe_insert("value", frame=frame)
        mat = Matrix(conversion.pose_to_blender_matrix(rotations[t], trans[t]).tolist())
        loc, rot, _ = mat.decompose()
        # Compatible Euler angles avoid 2π jumps between neighbouring frames.
        euler = rot.to_euler("XYZ", prev_euler) if prev_euler is not None else rot.to_euler("XYZ")
        prev_euler = euler
        obj.location, obj.rotation_euler = loc, euler
        obj.keyframe_insert("location", frame=frame)
        obj.keyframe_insert("rotation_euler", frame=frame)
    obj["msma_frames"] = [str(r.image_path or "") for r in results]
    obj["msma_smoothing_sigma"] = float(sigma)
    obj["msma_identity"] = identity
    if scene is not None:  # the clip, not Blender's default 1-250
        scene.frame_start = frame_start
        scene.frame_end = frame_start + len(results) - 1
    log.info("animated %r over %d frames (sigma %.2f)", obj.name, len(results), sigma)
    return obj
