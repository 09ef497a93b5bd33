"""The mouth interior (teeth, tongue) of a reconstructed head, fitted to its identity.

Face models that carry ``interior_*`` arrays (the default head, built from MakeHuman's
teeth and tongue helpers) give the interior its own linear model on the *same*
coefficients as the head: ``mean + A_id α + A_exp β`` (see :mod:`msma_engine.model_file`).
The identity basis of the interior is the regression of MakeHuman's fitted helper
geometry on the head's identity components, so the teeth follow the jaw width, mouth
size and face length of the reconstructed identity; the expression basis moves the lower
teeth and the tongue with ``jawOpen``, ``jawLeft``/``jawRight``, ``jawForward`` and the
tongue with ``tongueOut`` (the head's mouth cavity, a closed bag behind the lips, holds them).
Because a regression does not know where the skin is, every identity's interior is then
fitted behind the skin around the mouth, at rest and with each jaw and mouth key at weight 1
(:mod:`msma_engine.mouth_clearance`: a part that would poke through the chin or lips is
shrunk about its centroid).

Everything is in metres in the model frame (+x subject's left, +y up, +z out of the face).
BFM09 has no interior: :func:`mouth_interior_for` returns None for it.

Example:
    >>> mouth = mouth_interior_for(model, result.coeffs[:model.layout.n_id])  # doctest: +SKIP
    >>> mouth.vertices_neutral.shape, mouth.part_names  # doctest: +SKIP
    ((362, 3), ['upper_teeth', 'lower_teeth', 'tongue'])
"""

from __future__ import annotations

import dataclasses
import logging
import weakref
from dataclasses import dataclass

import numpy as np

from msma_engine.errors import ShapeError
from msma_engine.mouth_clearance import MARGIN, cavity_triangles, fit_behind_skin
from msma_engine.topology import as_numpy, freeze_arrays, reduce_fields

__all__ = ["MouthInterior", "mouth_interior_for", "ANCHOR_RADIUS", "PART_COLORS"]

log = logging.getLogger(__name__)

# Head vertices within this distance of the inner-lip centre pin the identity down when a
# neutral shape is given without its coefficients (:meth:`MouthInterior.reseated`).
ANCHOR_RADIUS = 0.05  # metres
# Base colours per part, linear RGB (renderers' materials; the head texture has no teeth).
PART_COLORS = {"upper_teeth": (0.80, 0.76, 0.68), "lower_teeth": (0.80, 0.76, 0.68), "tongue": (0.55, 0.16, 0.16)}
_INNER_LIPS = slice(60, 68)
# Expressions the interior is kept behind the skin for: those that move the interior or move
# the skin around the mouth by more than this (metres, weight 1).
_KEY_MOTION = 0.001
# ... except these, which are meant to push the interior out of the mouth.
_UNCHECKED_KEYS = ("tongueOut",)


@dataclass(frozen=True)
class MouthInterior:
    """Teeth and tongue of one identity.

    Attributes:
        vertices_neutral: ``(Vi, 3)`` metres, model frame, no expression.
        polygons: ``(Pi, 4)`` vertex indices, a triangle's 4th corner is -1; CCW outward.
        part: ``(Pi,)`` index into ``part_names`` of every polygon.
        part_names: e.g. ``["upper_teeth", "lower_teeth", "tongue"]``.
        expression_names: ``Kexp`` names, the head's.
        exp_basis: ``(Kexp, Vi, 3)`` metres per unit expression coefficient (zero for keys
            that do not move the interior), this identity's (a shrunk part moves less).
        mean: ``(Vi, 3)`` the interior at the mean identity.
        model_exp_basis: ``(Kexp, Vi, 3)`` the model's expression basis (before any shrink).
        id_basis: ``(Kid, Vi, 3)`` metres per identity coefficient.
        anchor_index: ``(A,)`` head vertices around the mouth used by :meth:`reseated`.
        anchor_mean: ``(A, 3)`` their mean-identity positions.
        anchor_basis: ``(Kid, A, 3)`` their identity basis.
        anchor_exp_basis: ``(Kexp, A, 3)`` their expression basis.
        skin_triangles: ``(F, 3)`` head triangles among the anchors (indices into
            ``anchor_index``) the interior stays behind; empty for no check.
        lining: ``(F,)`` bool, True for the triangles of the mouth cavity's lining.
        checked_poses: ``(J, Kexp)`` expression weights of the poses checked besides the rest
            pose: each moving key at weight 1, alone and together with ``jawOpen``.
        scales: ``(P,)`` the shrink applied to each part to keep it behind the skin (1 = none).
    """

    vertices_neutral: np.ndarray
    polygons: np.ndarray
    part: np.ndarray
    part_names: list[str]
    expression_names: list[str]
    exp_basis: np.ndarray
    mean: np.ndarray
    model_exp_basis: np.ndarray
    id_basis: np.ndarray
    anchor_index: np.ndarray
    anchor_mean: np.ndarray
    anchor_basis: np.ndarray
    anchor_exp_basis: np.ndarray
    skin_triangles: np.ndarray
    lining: np.ndarray
    checked_poses: np.ndarray
    scales: np.ndarray | None = None

    def __post_init__(self) -> None:
        freeze_arrays(self)

    __reduce__ = reduce_fields

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

    def with_identity(self, id_coeffs: np.ndarray, anchors_neutral: np.ndarray | None = None) -> MouthInterior:
        """The same interior for identity coefficients ``(Kid,)``, fitted behind the skin.

        Args:
            id_coeffs: ``(Kid,)``.
            anchors_neutral: ``(A, 3)`` the head's anchor vertices at rest; default: the
                model's shape for ``id_coeffs``.
        """
        a = np.asarray(id_coeffs, dtype=np.float64).reshape(-1)
        if a.shape != (self.id_basis.shape[0],):
            raise ShapeError(f"id_coeffs must be ({self.id_basis.shape[0]},), got {a.shape}")
        verts = self.mean + np.einsum("k,kvc->vc", a, self.id_basis)
        exp_basis = self.model_exp_basis
        scales = np.ones(len(self.part_names))
        if len(self.skin_triangles):
            if anchors_neutral is None:
                anchors_neutral = self.anchor_mean + np.einsum("k,kvc->vc", a, self.anchor_basis)
            verts, exp_basis, scales = fit_behind_skin(
                verts, exp_basis, [self.part_vertices(p) for p in self.part_names], anchors_neutral,
                self.anchor_exp_basis, self.skin_triangles, self.lining, self.checked_poses, MARGIN)
            if scales.min() < 1.0:
                log.debug("mouth interior shrunk to stay behind the skin: %s",
                          dict(zip(self.part_names, np.round(scales, 3).tolist())))
        return dataclasses.replace(self, vertices_neutral=verts.astype(np.float32),
                                   exp_basis=exp_basis.astype(np.float32), scales=scales)

    def reseated(self, vertices_neutral: np.ndarray) -> MouthInterior:
        """The interior of another identity of the same model given only its neutral head.

        The identity coefficients are the least-squares fit of the head's identity basis to
        the anchor vertices around the mouth (exact for shapes of the model's identity space,
        e.g. an average of reconstructions); the interior is then fitted behind that head's skin.

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
        return self.with_identity(coeffs, verts[self.anchor_index])


def _checked_poses(names: list[str], interior_exp: np.ndarray, interior_mean: np.ndarray, anchors: np.ndarray,
                   anchor_exp: np.ndarray) -> np.ndarray:
    """``(J, K)`` weights: every expression that moves the interior, or the head within 1 cm
    of it, by more than :data:`_KEY_MOTION`, at weight 1, alone and with ``jawOpen`` (talking
    and smiling open the jaw and pull the lips at once)."""
    lo, hi = interior_mean.min(axis=0) - 0.01, interior_mean.max(axis=0) + 0.01
    near = ((anchors >= lo) & (anchors <= hi)).all(axis=1)
    motion = np.maximum(np.abs(interior_exp).max(axis=(1, 2)), np.abs(anchor_exp[:, near]).max(axis=(1, 2)))
    keys = [k for k in np.flatnonzero(motion > _KEY_MOTION) if names[k] not in _UNCHECKED_KEYS]
    eye = np.eye(len(names))
    poses = [eye[k] for k in keys]
    if "jawOpen" in names:
        jaw = names.index("jawOpen")
        poses += [eye[k] + eye[jaw] for k in keys if k != jaw]
    return np.array(poses).reshape(-1, len(names))


def mouth_interior_for(model, id_coeffs) -> MouthInterior | None:
    """The mouth interior of one identity of ``model``.

    Args:
        model: a :class:`~msma_engine.face_model.FaceModel` (its ``interior`` attribute holds
            the container's interior arrays, or None).
        id_coeffs: ``(Kid,)`` identity coefficients (NumPy or torch).

    Returns:
        :class:`MouthInterior`, or None when the model has no interior (BFM09).
    """
    template = _template(model)
    return None if template is None else template.with_identity(as_numpy(id_coeffs))


# The identity-independent part (anchors, lining, checked poses) of each model's interior.
_TEMPLATE_CACHE: "weakref.WeakKeyDictionary[object, MouthInterior | None]" = weakref.WeakKeyDictionary()


def _template(model) -> MouthInterior | None:
    """The mean identity's interior of ``model``, not yet fitted behind the skin (cached per model)."""
    try:
        return _TEMPLATE_CACHE[model]
    except (KeyError, TypeError):
        pass
    data = getattr(model, "interior", None)
    if data is None:
        log.debug("face model %r has no mouth interior", getattr(model, "name", "?"))
        return None
    mean_shape = as_numpy(model.mean_shape).astype(np.float64)
    lm = as_numpy(model.landmark_indices).astype(np.int64)
    centre = mean_shape[lm[_INNER_LIPS]].mean(axis=0)
    anchors = np.flatnonzero(np.linalg.norm(mean_shape - centre, axis=1) < ANCHOR_RADIUS)
    anchor_exp = as_numpy(model.exp_basis)[:, anchors].astype(np.float32)
    interior_exp = np.asarray(data["exp_basis"])
    cavity = cavity_triangles(model, centre)
    if cavity is None:
        log.warning("face model %r: no mouth-cavity lining found; the interior is not checked against the skin",
                    getattr(model, "name", "?"))
        skin_tris, lining, poses = np.zeros((0, 3), np.int64), np.zeros(0, bool), np.zeros((0, len(interior_exp)))
    else:
        local = np.full(len(mean_shape), -1, np.int64)
        local[anchors] = np.arange(len(anchors))
        tris = local[as_numpy(model.triangles).astype(np.int64)]
        inside = (tris >= 0).all(axis=1)
        skin_tris, lining = tris[inside], cavity[inside]
        poses = _checked_poses(list(model.expression_names), interior_exp, data["mean_shape"], mean_shape[anchors],
                               anchor_exp)
    template = MouthInterior(
        vertices_neutral=data["mean_shape"], polygons=data["polygons"], part=data["part"],
        part_names=list(data["part_names"]), expression_names=list(model.expression_names),
        exp_basis=interior_exp, mean=data["mean_shape"], model_exp_basis=interior_exp, id_basis=data["id_basis"],
        anchor_index=anchors, anchor_mean=mean_shape[anchors].astype(np.float32),
        anchor_basis=as_numpy(model.id_basis)[:, anchors].astype(np.float32), anchor_exp_basis=anchor_exp,
        skin_triangles=skin_tris, lining=lining, checked_poses=poses)
    try:
        _TEMPLATE_CACHE[model] = template
    except TypeError:  # not weak-referenceable: rebuilt next time
        pass
    return template
