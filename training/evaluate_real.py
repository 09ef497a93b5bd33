"""Evaluation on the real-photo hold-out: landmarks, fit speed from each start, identity.

The hold-out is the evaluation split of :mod:`training.data.split` (whole LFW identities and
part of UTKFace), preprocessed once into a cache (``python -m training preprocess --split
holdout``). Ground truth is the detector's: its 68 iBUG points and, where the face model has a
dense correspondence, the 478 Face Mesh points, both cached in crop pixels. For every photo:

- **regression only** (each network): the network's coefficients, projected.
- **posed mean face**: the mean face posed by PnP on the 68 points (the engine's start without
  weights).
- **fit** from the mean face and **network + fit** (each network): the engine's test-time fit
  (:class:`msma_engine.fitting.FaceFitter`) started from each, with its time; and, on the
  landmark stages, the Levenberg-Marquardt iterations each start needs to come within 2 %
  of the landmark error that 25 iterations reach.
- **identity**: ROC AUC of same-person against different-person LFW pairs scored by the cosine
  similarity of the identity coefficients (0.5 = chance, 1 = perfect).

Errors are NME in percent of ``sqrt(w·h)`` of the ground-truth box (:func:`training.metrics.landmark_nme`).

Command line (prints a Markdown table)::

    python -m training evaluate-real --folder FACES --cache CACHE [--weights W ...|none] [--n 200]
"""

from __future__ import annotations

import argparse
import logging
import sys
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from msma_engine.errors import MSMAError
from msma_engine.face_model import FaceModel
from msma_engine.timing import Stopwatch
from training.metrics import landmark_nme
from training.real_losses import dense_points_2d

__all__ = ["RealRow", "roc_auc", "identity_auc", "evaluate_real", "real_table", "register"]

logger = logging.getLogger(__name__)

_CONVERGE_ITERS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 25)


@dataclass
class RealRow:
    """One method on the hold-out.

    Attributes:
        name: row label.
        nme68, nme_dense: per-photo NME (fractions); dense is empty without a correspondence.
        seconds: per-photo fit time (fit rows only).
        iterations: per-photo LM iterations to converge (fit rows only).
        identity: per-photo identity coefficients ``(n_id,)`` and the photo's person (-1 unknown).
    """

    name: str
    nme68: list[float] = field(default_factory=list)
    nme_dense: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    iterations: list[int] = field(default_factory=list)
    identity: list[tuple[np.ndarray, int]] = field(default_factory=list)


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve of scores (higher = more positive), ties counted half.

    The Mann-Whitney statistic: the probability that a random positive outscores a random negative.
    """
    pos, neg = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    scores = np.concatenate([pos, neg])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def identity_auc(identity: list[tuple[np.ndarray, int]]) -> tuple[float, int, int]:
    """ROC AUC of same- vs different-person pairs by cosine similarity of identity coefficients.

    Args:
        identity: ``(coefficients (n_id,), person)`` per photo; person < 0 photos are left out.

    Returns:
        ``(auc, same pairs, different pairs)``.
    """
    known = [(c, p) for c, p in identity if p >= 0]
    if len(known) < 2:
        return float("nan"), 0, 0
    x = np.stack([c for c, _ in known]).astype(np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    person = np.array([p for _, p in known])
    sim = x @ x.T
    iu = np.triu_indices(len(known), 1)
    same = person[iu[0]] == person[iu[1]]
    s = sim[iu]
    return roc_auc(s[same], s[~same]), int(same.sum()), int((~same).sum())


def _errors(model: FaceModel, coeffs: torch.Tensor, item: dict[str, torch.Tensor], row: RealRow) -> None:
    with torch.no_grad():
        out = model(coeffs)
        row.nme68.append(float(landmark_nme(out.landmarks_2d, item["landmarks"][None])[0]))
        dense = dense_points_2d(model, out.vertices)
        if dense is not None and float(item["dense_valid"]) > 0:
            gt = item["dense"][None]
            row.nme_dense.append(float(landmark_nme(dense[:, : gt.shape[1]], gt)[0]))
        row.identity.append((model.layout.split(coeffs).id[0].cpu().numpy(), int(item["person"])))


def _converge_iterations(fitters: dict[int, object], target, init: torch.Tensor | None) -> int:
    """Fewest LM shape iterations whose landmark NME is within 2 % of the 25-iteration result."""
    nmes = {}
    for k, fitter in fitters.items():
        res = fitter.fit(target, init=init, rigid_init=init is None)
        nmes[k] = res.scores.landmark_nme_fit
    best = nmes[max(nmes)]
    return min(k for k, v in nmes.items() if v <= best * 1.02 + 1e-5)


def evaluate_real(folder: str | Path, cache: str | Path | None, networks: dict[str, torch.nn.Module],
                  model: FaceModel, fit: str = "default", n: int | None = None, convergence: bool = True,
                  progress: bool = True) -> list[RealRow]:
    """Evaluate networks and the references on the cached hold-out.

    Args:
        folder, cache: the collection root and its preprocessing cache.
        networks: label → regressor (``predict_crops``); may be empty (references only).
        model: the face model.
        fit: fitter preset for the fit rows.
        n: evaluate the first ``n`` hold-out photos (the split's order keeps LFW people together).
        convergence: also count LM iterations to converge (10 landmark-only fits per start).
        progress: tqdm bar.

    Returns:
        Rows in table order.
    """
    from dataclasses import replace

    from tqdm import tqdm

    from msma_engine.fitting import QUALITY_PRESETS, FaceFitter, FitTarget, rigid_pose_from_landmarks
    from training.data.folder import FaceFolder

    ds = FaceFolder(folder, cache, split="holdout")
    count = len(ds) if n is None else min(n, len(ds))
    fitter = FaceFitter(model, fit)
    lm_only = replace(QUALITY_PRESETS[fit], light_rounds=0, photo_steps=0)
    conv = {k: FaceFitter(model, replace(lm_only, shape_iters=k)) for k in _CONVERGE_ITERS} if convergence else {}
    rows = {"mean": RealRow("posed mean face"), "fit": RealRow(f"fit ({fit}) from the mean face")}
    for label in networks:
        rows[f"net:{label}"] = RealRow(f"{label}: regression only")
        rows[f"netfit:{label}"] = RealRow(f"{label} + fit ({fit})")
    for i in tqdm(range(count), desc="evaluate-real", disable=not progress, dynamic_ncols=True):
        item = ds[i]
        target = FitTarget(image=item["image"][None], landmarks=item["landmarks"][None], valid=item["valid"][None])
        mean = model.layout.zeros(1)
        angles, trans = rigid_pose_from_landmarks(model, item["landmarks"].numpy().astype(np.float64), mean)
        s = model.layout.slices()
        mean[0, s["angles"]] = torch.as_tensor(angles, dtype=torch.float32)
        mean[0, s["trans"]] = torch.as_tensor(trans, dtype=torch.float32)
        _errors(model, mean, item, rows["mean"])
        starts: list[tuple[str, torch.Tensor | None]] = [("fit", None)]
        for label, net in networks.items():
            with torch.no_grad():
                pred = net.predict_crops(item["image"][None]).float()
            _errors(model, pred, item, rows[f"net:{label}"])
            starts.append((f"netfit:{label}", pred))
        for key, init in starts:
            clock = Stopwatch()
            res = fitter.fit(target, init=init, rigid_init=init is None)
            rows[key].seconds.append(clock.elapsed)
            _errors(model, res.coeffs, item, rows[key])
            if conv:
                rows[key].iterations.append(_converge_iterations(conv, target, init))
    order = ["mean", "fit"] + [k for label in networks for k in (f"net:{label}", f"netfit:{label}")]
    return [rows[k] for k in order]


def _fmt(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    if not values:
        return "–"
    v = float(np.mean(values)) * scale
    return "–" if math.isnan(v) else f"{v:.{digits}f}"


def real_table(rows: list[RealRow]) -> str:
    """Markdown table of :func:`evaluate_real` rows."""
    head = ["method", "n", "68-pt NME (%) ↓", "dense NME (%) ↓", "fit time (s)", "LM iters to converge",
            "identity ROC AUC ↑ (same/diff pairs)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        auc, n_same, n_diff = identity_auc(r.identity)
        auc_s = "–" if math.isnan(auc) else f"{auc:.3f} ({n_same}/{n_diff})"
        lines.append("| " + " | ".join([r.name, str(len(r.nme68)), _fmt(r.nme68, 100), _fmt(r.nme_dense, 100),
                                         _fmt(r.seconds, 1, 3), _fmt(r.iterations, 1, 1), auc_s]) + " |")
    return "\n".join(lines)


def _cmd(args: argparse.Namespace) -> int:
    from msma_engine.face_model import load_face_model
    from msma_engine.network import load_weights

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_face_model(args.model).eval()
    lay = model.layout
    networks = {}
    try:
        for w in args.weights:
            if w == "none":
                continue
            networks[Path(w).name] = load_weights(w, n_id=lay.n_id, n_exp=lay.n_exp, n_tex=lay.n_tex).eval()
        rows = evaluate_real(args.folder, args.cache, networks, model, fit=args.fit, n=args.n,
                             convergence=not args.no_convergence, progress=not args.no_progress)
    except (MSMAError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(real_table(rows))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``evaluate-real`` subcommand to ``python -m training``."""
    p = sub.add_parser("evaluate-real", help="table on the real-photo hold-out (landmarks, fit speed, identity AUC)")
    p.add_argument("--folder", required=True, help="collection root given to `preprocess --split holdout`")
    p.add_argument("--cache", default=None, help="its cache (default: <folder>/.msma_cache)")
    p.add_argument("--weights", nargs="*", default=["none"],
                   help="network weights to evaluate ('none' = references only)")
    p.add_argument("--model", default=None, help="face model .npz (default: the shipped head)")
    p.add_argument("--fit", default="default", choices=["fast", "default"])
    p.add_argument("--n", type=int, default=None, help="first N hold-out photos (default: all cached)")
    p.add_argument("--no-convergence", action="store_true",
                   help="skip the LM iteration count (10 extra fits per start)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd)
