"""The mouth interior (upper teeth, lower teeth, tongue) from the base mesh's helper geometry.

MakeHuman's ``base.obj`` carries proxy-fitting helpers inside the closed mouth cavity:
``helper-upper-teeth`` and ``helper-lower-teeth`` (a ring of teeth with the gums) and
``helper-tongue``. The identity modifiers and the Face Units expression targets move their
vertices too (``jawOpen``, ``jawLeft/Right``, ``jawForward`` swing the lower teeth and the
tongue; ``tongueOut`` pushes the tongue), so the interior is built exactly like the head:
same identity samples (regressed on the head's identity components, see
:func:`.shape.build_identity_space`) and the same expression targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from msma_engine.errors import ModelFileError

from .source import BaseMesh

__all__ = ["INTERIOR_PARTS", "InteriorMesh", "cut_interior"]

# Base-mesh face group of every part, in the container's part order.
INTERIOR_PARTS = {"upper_teeth": "helper-upper-teeth", "lower_teeth": "helper-lower-teeth", "tongue": "helper-tongue"}


@dataclass
class InteriorMesh:
    """The interior parts, still in MakeHuman units (decimetres).

    Attributes:
        base_index: (Vi,) int64 base-mesh vertex of every interior vertex.
        vertices: (Vi, 3) float64 positions.
        quads: (Pi, 4) int64 counter-clockwise seen from outside.
        part: (Pi,) int64 index into ``part_names`` of every quad.
        part_names: the keys of :data:`INTERIOR_PARTS`.
    """

    base_index: np.ndarray
    vertices: np.ndarray
    quads: np.ndarray
    part: np.ndarray
    part_names: list[str]


def cut_interior(base: BaseMesh) -> InteriorMesh:
    """Collect the teeth and tongue helper faces of the base mesh.

    Raises:
        ModelFileError: a helper group is missing from ``base.obj``.
    """
    names = list(INTERIOR_PARTS)
    part = np.full(len(base.groups), -1, np.int64)
    for k, group in enumerate(INTERIOR_PARTS.values()):
        sel = base.groups == group
        if not sel.any():
            raise ModelFileError(f"base mesh has no {group!r} faces")
        part[sel] = k
    keep = part >= 0
    base_index, quads = np.unique(base.quads[keep], return_inverse=True)
    return InteriorMesh(base_index, base.vertices[base_index], quads.reshape(-1, 4), part[keep], names)
