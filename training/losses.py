"""Weights of the training losses; the loss terms themselves are :mod:`msma_engine.losses`.

The terms are shared with test-time fitting (one definition each) and imported from there.
:class:`LossWeights` holds their weights with the paper's defaults (Deep3DFaceRecon's
values where MSMA follows it). Landmarks are in pixels of the 224×224 crop, which is the
scale the landmark weight 1.6e-3 was tuned for.
"""

from __future__ import annotations

from dataclasses import dataclass

from msma_engine.losses import PAPER_WEIGHTS

__all__ = ["LossWeights"]


@dataclass
class LossWeights:
    """Weights of the loss terms; defaults are the paper's (Deep3DFaceRecon's where it defers).

    Attributes:
        photometric: skin-masked per-pixel L2 colour distance (w_color 1.92).
        perceptual: 1 − cosine of identity embeddings (w_feat 0.2).
        landmark: weighted squared landmark distance in pixels (w_lm 1.6e-3).
        regularization: overall coefficient regulariser weight (w_reg 3e-4).
        reg_id, reg_exp, reg_tex: the regulariser's per-group weights λα, λβ, λγ (1.0, 0.8, 1.7e-2).
        gamma: monochromatic-light regulariser (w_gamma 10).
        reflectance: albedo variance in the skin region (w_reflc 5.0).
        landmark_nose, landmark_mouth: per-point weights of landmarks 28-30 (nose bridge)
            and 60-67 (inner mouth) in the landmark loss (20, 20; the rest 1).
        coeff: supervised coefficient loss on synthetic data (0 = off).
        vertex: supervised vertex loss (mean distance in mm of the posed vertices, face
            region) on synthetic data (0 = off).
        shape: supervised pose-free shape loss on synthetic data: mean face-region vertex
            distance (mm) in the model frame between ``mean + A_id α + A_exp β`` of the
            prediction and of the ground truth (0 = off). It weighs each identity and
            expression direction by how far it moves the face, which is what the
            evaluation's aligned vertex error measures; the plain coefficient loss weighs
            all 80 identity directions alike although the first ten move the face most.
        coeff_groups: per-group weights inside the supervised coefficient loss, in layout
            order ``id, exp, tex, angles, gamma, trans`` (angles in radians, trans in
            decimetres so each group has a similar scale).
    """

    photometric: float = PAPER_WEIGHTS["photometric"]
    perceptual: float = PAPER_WEIGHTS["perceptual"]
    landmark: float = PAPER_WEIGHTS["landmark_px"]
    regularization: float = PAPER_WEIGHTS["regularisation"]
    reg_id: float = PAPER_WEIGHTS["reg_id"]
    reg_exp: float = PAPER_WEIGHTS["reg_exp"]
    reg_tex: float = PAPER_WEIGHTS["reg_tex"]
    gamma: float = PAPER_WEIGHTS["gamma"]
    reflectance: float = PAPER_WEIGHTS["reflectance"]
    landmark_nose: float = 20.0
    landmark_mouth: float = 20.0
    coeff: float = 0.0
    vertex: float = 0.0
    shape: float = 0.0
    coeff_groups: tuple[float, float, float, float, float, float] = (1.0, 1.0, 0.5, 10.0, 1.0, 10.0)

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            values = value if isinstance(value, (tuple, list)) else (value,)
            if any((not isinstance(v, (int, float))) or v < 0 for v in values):
                raise ValueError(f"LossWeights.{name} must be non-negative, got {value!r}")
        self.coeff_groups = tuple(float(v) for v in self.coeff_groups)
        if len(self.coeff_groups) != 6:
            raise ValueError(f"LossWeights.coeff_groups needs 6 values, got {self.coeff_groups!r}")
