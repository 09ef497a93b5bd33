"""What every face of one face model shares: mesh connectivity, UVs, expressions, coefficient layout.

A :class:`FaceTopology` is built once per :class:`~msma_engine.face_model.FaceModel`
(:attr:`FaceModel.topology`) and every :class:`~msma_engine.result.FaceResult` of that model
points to the same object, so a result carries everything needed to build an animatable
mesh (smplx's split: per-call outputs beside the model's fixed faces and blend shapes).
Its arrays are NumPy, copied from the model and read-only.

Example:
    >>> from msma_engine import load_face_model
    >>> topo = load_face_model().topology  # doctest: +SKIP
    >>> topo.expression_basis.shape == (topo.layout.n_exp, topo.n_vertices, 3)  # doctest: +SKIP
    True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from msma_engine.errors import ShapeError

if TYPE_CHECKING:
    from msma_engine.face_model import CoeffLayout

__all__ = ["FaceTopology", "as_numpy", "read_only", "freeze_arrays", "reduce_fields"]


def as_numpy(array) -> np.ndarray:
    """``array`` as NumPy: a torch tensor (any device) is copied to the CPU, array-likes as ``np.asarray``."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def read_only(array, dtype=None) -> np.ndarray:
    """A read-only NumPy copy of ``array`` (a torch tensor on any device, or array-like)."""
    out = np.array(as_numpy(array), dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


def freeze_arrays(obj) -> None:
    """Replace each writeable NumPy-array field of the frozen dataclass ``obj`` by a read-only
    view (the caller's array keeps its own flags); call from ``__post_init__``."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, np.ndarray) and value.flags.writeable:
            view = value.view()
            view.setflags(write=False)
            object.__setattr__(obj, f.name, view)


def reduce_fields(obj) -> tuple:
    """``__reduce__`` of a frozen dataclass: unpickling goes through the constructor again, so
    the checks run and the arrays are read-only again."""
    return type(obj), tuple(getattr(obj, f.name) for f in dataclasses.fields(obj))


@dataclass(frozen=True, eq=False)
class FaceTopology:
    """The fixed, shared part of a face model's results (frozen; read-only arrays).

    Attributes:
        name: the face model's name (container ``name``).
        layout: the coefficient layout ``id | exp | tex | angles | gamma | trans``.
        triangles: ``(F, 3)`` int32 vertex indices, CCW outward.
        uv_coords: ``(T, 2)`` float32 UVs, origin bottom-left; ``uv_triangles`` ``(F, 3)`` index them.
        uv_triangles: ``(F, 3)`` int32.
        expression_names: ``Kexp`` names of the expression basis.
        expression_range: ``(Kexp, 2)`` float32 slider range per expression.
        expression_basis: ``(Kexp, V, 3)`` float32 metres per unit expression coefficient.
        polygons: ``(P, 4)`` int32 source polygons (quads; a triangle's 4th corner is -1) that
            ``triangles`` split, or None (BFM09: triangles only); ``uv_polygons`` likewise.
        uv_polygons: ``(P, 4)`` int32 or None.
    """

    name: str
    layout: CoeffLayout
    triangles: np.ndarray
    uv_coords: np.ndarray
    uv_triangles: np.ndarray
    expression_names: tuple[str, ...]
    expression_range: np.ndarray
    expression_basis: np.ndarray
    polygons: np.ndarray | None = None
    uv_polygons: np.ndarray | None = None

    def __post_init__(self) -> None:
        freeze_arrays(self)
        k = self.layout.n_exp
        if len(self.expression_names) != k or self.expression_range.shape != (k, 2):
            raise ShapeError(f"{k} expressions in the layout, got {len(self.expression_names)} names and "
                             f"a range of shape {self.expression_range.shape}")
        basis = self.expression_basis
        if basis.ndim != 3 or basis.shape[0] != k or basis.shape[2] != 3:
            raise ShapeError(f"expression_basis must be ({k}, V, 3), got {basis.shape}")
        if self.triangles.shape != self.uv_triangles.shape:
            raise ShapeError(f"triangles {self.triangles.shape} and uv_triangles {self.uv_triangles.shape} differ")

    __reduce__ = reduce_fields

    @property
    def n_vertices(self) -> int:
        """Number of face vertices V."""
        return int(self.expression_basis.shape[1])

    @classmethod
    def from_model(cls, model) -> FaceTopology:
        """The topology of a :class:`~msma_engine.face_model.FaceModel` (copies its buffers)."""
        opt = lambda a: None if a is None else read_only(a, np.int32)  # noqa: E731
        return cls(
            name=model.name,
            layout=model.layout,
            triangles=read_only(model.triangles, np.int32),
            uv_coords=read_only(model.uv_coords, np.float32),
            uv_triangles=read_only(model.uv_triangles, np.int32),
            expression_names=tuple(model.expression_names),
            expression_range=read_only(model.expression_range, np.float32),
            expression_basis=read_only(model.exp_basis, np.float32),
            polygons=opt(model.polygons),
            uv_polygons=opt(model.uv_polygons),
        )
