"""Expression shape keys: "Basis" plus one key per expression basis vector."""

from __future__ import annotations

import logging

import bpy
import numpy as np

from . import conversion

__all__ = ["BASIS_NAME", "SLIDER_LIMIT", "add_expression_keys", "add_driven_keys", "slider_range"]

log = logging.getLogger(__name__)

BASIS_NAME = "Basis"
# Blender clamps ShapeKey.slider_min/max to [-10, 10].
SLIDER_LIMIT = 10.0


def slider_range(expression_range: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Slider limits ``(K, 2)`` covering both the model's range and the given values ``(K,)`` or ``(T, K)``.

    Blender clamps a key's value to its slider range, so the range is widened to include
    every value that will be set or keyframed, then limited to Blender's ±10.
    """
    rng = np.asarray(expression_range, dtype=np.float64).reshape(-1, 2).copy()
    vals = np.asarray(values, dtype=np.float64).reshape(-1, rng.shape[0])
    rng[:, 0] = np.minimum(rng[:, 0], vals.min(axis=0))
    rng[:, 1] = np.maximum(rng[:, 1], vals.max(axis=0))
    clipped = np.clip(rng, -SLIDER_LIMIT, SLIDER_LIMIT)
    if not np.array_equal(clipped, rng):
        log.warning("expression values beyond Blender's slider limit ±%g were clipped", SLIDER_LIMIT)
    # Blender needs min < max.
    clipped[:, 1] = np.maximum(clipped[:, 1], clipped[:, 0] + 1e-3)
    return clipped


def add_expression_keys(obj: bpy.types.Object, vertices_neutral: np.ndarray, exp_basis: np.ndarray,
                        names: list[str], expression_range: np.ndarray, weights: np.ndarray,
                        all_values: np.ndarray | None = None) -> list[bpy.types.ShapeKey]:
    """Add "Basis" (the neutral shape) and one relative key per expression to a new mesh object.

    Args:
        obj: mesh object whose vertices are in the order of the face model.
        vertices_neutral: ``(V, 3)`` engine model-frame neutral shape, metres.
        exp_basis: ``(K, V, 3)`` metres per unit expression coefficient (engine axes).
        names: ``K`` key names.
        expression_range: ``(K, 2)`` model slider range.
        weights: ``(K,)`` values to set.
        all_values: optional ``(T, K)`` values that will be keyframed later (ranges cover them).

    Returns:
        The K expression keys (without the basis).
    """
    basis_np = np.asarray(exp_basis, dtype=np.float64)
    k, v = basis_np.shape[:2]
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(names) != k or weights.shape[0] != k or len(obj.data.vertices) != v:
        raise ValueError(f"expression basis {basis_np.shape}, {len(names)} names, {weights.shape[0]} weights "
                         f"and {len(obj.data.vertices)} mesh vertices do not agree")
    neutral = conversion.points_to_blender(vertices_neutral).astype(np.float64)
    covered = weights[None] if all_values is None else np.vstack([weights[None], all_values])
    ranges = slider_range(expression_range, covered)
    basis_key = obj.shape_key_add(name=BASIS_NAME, from_mix=False)
    basis_key.data.foreach_set("co", neutral.astype(np.float32).reshape(-1))
    keys = []
    for i, name in enumerate(names):
        key = obj.shape_key_add(name=str(name), from_mix=False)
        co = neutral + conversion.points_to_blender(basis_np[i]).astype(np.float64)
        key.data.foreach_set("co", co.astype(np.float32).reshape(-1))
        # Blender keeps slider_min < slider_max at every assignment: open the range first.
        key.slider_max = SLIDER_LIMIT
        key.slider_min = float(ranges[i, 0])
        key.slider_max = float(ranges[i, 1])
        key.value = float(weights[i])
        keys.append(key)
    obj.data.shape_keys.use_relative = True
    return keys


def add_driven_keys(obj: bpy.types.Object, vertices: np.ndarray, offsets: np.ndarray, names: list[str],
                    source: bpy.types.Object) -> list[bpy.types.ShapeKey]:
    """Give ``obj`` "Basis" plus keys whose values follow ``source``'s keys of the same names (drivers).

    Used for parts that move with the face's expressions but are separate objects (the
    eyeballs' ``eyeLook*`` turns). Exporters see ordinary shape keys of the same names.

    Args:
        obj: mesh object without shape keys.
        vertices: ``(N, 3)`` engine model-frame rest positions of ``obj``'s vertices, metres.
        offsets: ``(K, N, 3)`` engine-axes offsets at value 1.
        names: ``K`` key names, each a key of ``source``.
        source: the face object whose shape keys drive these.

    Returns:
        The K new keys.
    """
    offsets = np.asarray(offsets, dtype=np.float64)
    if offsets.shape != (len(names), len(obj.data.vertices), 3):
        raise ValueError(f"offsets {offsets.shape} do not match {len(names)} names and "
                         f"{len(obj.data.vertices)} vertices")
    src_keys = source.data.shape_keys
    rest = conversion.points_to_blender(vertices).astype(np.float64)
    obj.shape_key_add(name=BASIS_NAME, from_mix=False).data.foreach_set("co", rest.astype(np.float32).reshape(-1))
    keys = []
    for name, off in zip(names, offsets):
        src = src_keys.key_blocks[name]  # KeyError: not a key of the source
        key = obj.shape_key_add(name=name, from_mix=False)
        key.data.foreach_set("co", (rest + conversion.points_to_blender(off)).astype(np.float32).reshape(-1))
        key.slider_max = SLIDER_LIMIT
        key.slider_min, key.slider_max = src.slider_min, src.slider_max
        fcurve = key.driver_add("value")
        driver = fcurve.driver
        driver.type = "AVERAGE"
        var = driver.variables.new()
        var.name = "value"
        var.type = "SINGLE_PROP"
        var.targets[0].id_type = "KEY"
        var.targets[0].id = src_keys
        var.targets[0].data_path = f'key_blocks["{name}"].value'
        key.value = src.value
        keys.append(key)
    return keys
