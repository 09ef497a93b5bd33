"""The mouth interior (teeth, tongue) of a reconstructed head, fitted to its identity.

Face models that carry ``interior_*`` arrays (the default head, built from MakeHuman's
teeth and tongue helpers) give the interior its own linear model on the *same*
coefficients as the head: ``mean + A_id α + A_exp β`` (see :mod:`msma_engine.model_file`).
The identity basis of the interior is the regression of MakeHuman's fitted helper
geometry on the head's identity components, so the teeth follow the jaw width, mouth
size and face length of the reconstructed identity; the expression basis moves the lower
teeth and the tongue with ``jawOpen``, ``jawLeft``/``jawRight``, ``jawForward`` and the
tongue with ``tongueOut`` (the head's mouth cavity, a closed bag behind the lips, holds them).

Everything is in metres in the model frame (+x subject's left, +y up, +z out of the face).
BFM09 has no interior: :func:`mouth_interior_for` returns None for it.

Example:
    >>> mouth = mouth_interior_for(model, result.coeffs[:model.layout.n_id])  # doctest: +SKIP
    >>> mouth.vertices_neutral.shape, mouth.part_names  # doctest: +SKIP
    ((362, 3), ['upper_teeth', 'lower_teeth', 'tongue'])
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from msma_engine.errors import ShapeError

__all__ = ["MouthInterior", "mouth_interior_for", "ANCHOR_RADIUS", "PART_COLORS"]

log = logging.getLogger(__name__)

# Head vertices within this distance of the inner-lip centre pin the identity down when a
# neutral shape is given without its coefficients (:meth:`MouthInterior.reseated`).
ANCHOR_RADIUS = 0.05  # metres
# Base colours per part, linear RGB (renderers' materials; the head texture has no teeth).
PART_COLORS = {"upper_teeth": (0.80, 0.76, 0.68), "lower_teeth": (0.80, 0.76, 0.68), "tongue": (0.55, 0.16, 0.16)}
_INNER_LIPS = slice(60, 68)


@dataclass
class MouthInterior:
    """Teeth and tongue of one identity.

    Attributes:
        vertices_neutral: ``(Vi, 3)`` metres, model frame, no expression.
        polygons: ``(Pi, 4)`` vertex indices, a triangle's 4th corner is -1; CCW outward.
        part: ``(Pi,)`` index into ``part_names`` of every polygon.
        part_names: e.g. ``["upper_teeth", "lower_teeth", "tongue"]``.
        expression_names: ``Kexp`` names, the head's.
        exp_basis: ``(Kexp, Vi, 3)`` metres per unit expression coefficient (zero for keys
            that do not move the interior).
        mean: ``(Vi, 3)`` the interior at the mean identity.
        id_basis: ``(Kid, Vi, 3)`` metres per identity coefficient.
        anchor_index: ``(A,)`` head vertices around the mouth used by :meth:`reseated`.
        anchor_mean: ``(A, 3)`` their mean-identity positions.
        anchor_basis: ``(Kid, A, 3)`` their identity basis.
    """

    vertices_neutral: np.ndarray
    polygons: np.ndarray
    part: np.ndarray
    part_names: list[str]
    expression_names: list[str]
    exp_basis: np.ndarray
    mean: np.ndarray
    id_basis: np.ndarray
    anchor_index: np.ndarray
    anchor_mean: np.ndarray
    anchor_basis: np.ndarray

    def moving_keys(self, tol: float = 1e-6) -> list[int]:
        """Indices of the expressions that move any interior vertex by more than ``tol`` metres."""
        return [k for k in range(len(self.expression_names)) if np.abs(self.exp_basis[k]).max() > tol]

    def part_vertices(self, name: str) -> np.ndarray:
        """``(n,)`` vertex indices of one part."""
        corners = self.polygons[self.part == self.part_names.index(name)].ravel()
        return np.unique(corners[corners >= 0])

    def posed(self, expression_weights: np.ndarray) -> np.ndarray:
        """``(Vi, 3)`` the interior with an expression applied."""
        w = np.asarray(expression_weights, dtype=np.float64).reshape(-1)
        if w.shape != (len(self.expression_names),):
            raise ShapeError(f"expression_weights must be ({len(self.expression_names)},), got {w.shape}")
        return self.vertices_neutral + np.einsum("k,kvc->vc", w, self.exp_basis)

    def with_identity(self, id_coeffs: np.ndarray) -> MouthInterior:
        """The same interior for identity coefficients ``(Kid,)``."""
        a = np.asarray(id_coeffs, dtype=np.float64).reshape(-1)
        if a.shape != (self.id_basis.shape[0],):
            raise ShapeError(f"id_coeffs must be ({self.id_basis.shape[0]},), got {a.shape}")
        verts = self.mean + np.einsum("k,kvc->vc", a, self.id_basis)
        return MouthInterior(verts.astype(np.float32), self.polygons, self.part, self.part_names,
                             self.expression_names, self.exp_basis, self.mean, self.id_basis,
                             self.anchor_index, self.anchor_mean, self.anchor_basis)

    def reseated(self, vertices_neutral: np.ndarray) -> MouthInterior:
        """The interior of another identity of the same model given only its neutral head.

        The identity coefficients are the least-squares fit of the head's identity basis to
        the anchor vertices around the mouth (exact for shapes of the model's identity space,
        e.g. an average of reconstructions).

        Args:
            vertices_neutral: ``(V, 3)`` head vertices, metres, model frame.
        """
        verts = np.asarray(vertices_neutral, dtype=np.float64)
        if verts.ndim != 2 or verts.shape[1] != 3 or verts.shape[0] <= int(self.anchor_index.max()):
            raise ShapeError(f"vertices_neutral must be (V, 3) with V > {int(self.anchor_index.max())}, "
                             f"got {verts.shape}")
        k = self.anchor_basis.shape[0]
        a = self.anchor_basis.reshape(k, -1).T.astype(np.float64)
        b = (verts[self.anchor_index] - self.anchor_mean).reshape(-1)
        coeffs = np.linalg.lstsq(a, b, rcond=None)[0]
        return self.with_identity(coeffs)


def _np(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def mouth_interior_for(model, id_coeffs) -> MouthInterior | None:
    """The mouth interior of one identity of ``model``.

    Args:
        model: a :class:`~msma_engine.face_model.FaceModel` (its ``interior`` attribute holds
            the container's interior arrays, or None).
        id_coeffs: ``(Kid,)`` identity coefficients (NumPy or torch).

    Returns:
        :class:`MouthInterior`, or None when the model has no interior (BFM09).
    """
    data = getattr(model, "interior", None)
    if data is None:
        log.debug("face model %r has no mouth interior", getattr(model, "name", "?"))
        return None
    mean_shape = _np(model.mean_shape).astype(np.float64)
    lm = _np(model.landmark_indices).astype(np.int64)
    centre = mean_shape[lm[_INNER_LIPS]].mean(axis=0)
    anchors = np.flatnonzero(np.linalg.norm(mean_shape - centre, axis=1) < ANCHOR_RADIUS)
    template = MouthInterior(
        vertices_neutral=data["mean_shape"], polygons=data["polygons"], part=data["part"],
        part_names=list(data["part_names"]), expression_names=list(model.expression_names),
        exp_basis=data["exp_basis"], mean=data["mean_shape"], id_basis=data["id_basis"],
        anchor_index=anchors, anchor_mean=mean_shape[anchors].astype(np.float32),
        anchor_basis=_np(model.id_basis)[:, anchors].astype(np.float32))
    return template.with_identity(_np(id_coeffs))
