"""Held-out dense-landmark error of the fit on real photos (no labels needed); prints a table.

For each photo: detect, run Face Mesh (478 points), align the 224 crop. The mesh points
(minus the iris) are split at random into ``--folds`` folds; for each fold the fit sees
the other folds' points and the error is measured on the fold's own points: the mean 2D
distance between the fitted model's surface points and the detector's, in units of the
inter-ocular distance (outer eye corners of the 68 points). Face-oval points are measured
along the outline's normal (``oval`` column; a silhouette point may slide along it).

``before`` is the fit as it was before issue 17: the 68 iBUG points (taken from the same
Face Mesh), inner-mouth weight 20 and a Gaussian expression prior — it sees no fold
split, so it is measured on the same held-out points with an advantage (some of them
make up its 68). ``after`` is the default fit; ``lasso`` is it without the debiasing
refit (the issue-17 fit of the first session). Only the landmark stages run (the colour
stages do not move the geometry).

Usage::

    python benchmarks/bench_fit_heldout.py [--n 200] [--folds 4] [--seed 0] [--configs before,after]

Photos: ``--n`` from ../shared/data/faces (half LFW, one per person; half UTKFace), chosen
with ``--seed``. The photos are research-only data: they are read, never written.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fit_targets import list_photos, prepare  # noqa: E402
from machine import cpu_model  # noqa: E402

from msma_engine.dense_landmarks import (  # noqa: E402
    IRIS_LEFT,
    IRIS_RIGHT,
    N_DENSE,
    N_MESH,
    OVAL,
    contour_normals,
    region_of,
)
from msma_engine.expression_prior import ExpressionPrior  # noqa: E402
from msma_engine.face_model import load_face_model  # noqa: E402
from msma_engine.fitting import FaceFitter, FitConfig, FitTarget  # noqa: E402

GEOMETRY_ONLY = dict(light_rounds=0, photo_steps=0)


def configs(model) -> dict[str, FaceFitter]:
    """The compared fitters by name."""
    return {
        "before": FaceFitter(model, FitConfig(dense=False, inner_mouth_weight=20.0, **GEOMETRY_ONLY),
                             prior=ExpressionPrior.gaussian_only(model)),
        "after": FaceFitter(model, FitConfig(**GEOMETRY_ONLY)),
        "after_68": FaceFitter(model, FitConfig(dense=False, **GEOMETRY_ONLY)),
        "lasso": FaceFitter(model, FitConfig(debias_iters=0, **GEOMETRY_ONLY)),
    }


def folds(n_folds: int, seed: int) -> list[np.ndarray]:
    """Disjoint random folds of the measured mesh points (iris excluded)."""
    pts = np.setdiff1d(np.arange(N_MESH), np.r_[IRIS_RIGHT, IRIS_LEFT])
    rng = np.random.default_rng(seed)
    return np.array_split(rng.permutation(pts), n_folds)


def heldout_errors(fitter: FaceFitter, target: FitTarget, fold_list: list[np.ndarray], use_folds: bool,
                   per_point: np.ndarray | None = None) -> tuple[float, float]:
    """Mean held-out error (IOD) over the folds: (non-oval points, oval points along the normal).

    ``per_point`` ``(478,)``, if given, receives each held-out point's error (oval: along the normal).
    """
    dense = target.dense[0].double()
    iod = float((target.landmarks[0, 45] - target.landmarks[0, 36]).norm())
    normals = torch.as_tensor(contour_normals(dense.numpy()))
    oval = np.array(OVAL)
    inner, outer = [], []
    fitted_once = None
    for fold in fold_list:
        if use_folds:
            mask = torch.ones(N_DENSE, dtype=torch.bool)
            mask[fold] = False
            coeffs = fitter.fit(replace(target, dense_mask=mask)).coeffs
        else:
            fitted_once = fitted_once if fitted_once is not None else fitter.fit(target).coeffs
            coeffs = fitted_once
        with torch.no_grad():
            pred = _dense_points(fitter, coeffs)[0].double()
        d = pred - dense
        is_oval = np.isin(fold, oval)
        e_in = d[fold[~is_oval]].norm(dim=-1).numpy() / iod
        inner.append(float(e_in.mean()))
        o = fold[is_oval]
        e_out = np.zeros(0)
        if len(o):
            rows = [OVAL.index(int(k)) for k in o]
            e_out = (d[o] * normals[rows]).sum(-1).abs().numpy() / iod
            outer.append(float(e_out.mean()))
        if per_point is not None:
            per_point[fold[~is_oval]] = e_in
            per_point[o] = e_out
    return float(np.mean(inner)), float(np.mean(outer)) if outer else float("nan")



def _dense_points(fitter: FaceFitter, coeffs: torch.Tensor) -> torch.Tensor:
    """The dense points of any fitter's coefficients (the 68-point fitters measure through the model's table)."""
    return fitter.dense_points(coeffs.float())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=200, help="number of photos")
    p.add_argument("--folds", type=int, default=4)
    p.add_argument("--seed", type=int, default=0, help="photo choice and fold split")
    p.add_argument("--configs", default="before,after", help="comma-separated: before, after, after_68, lasso")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = load_face_model()
    fitters = configs(model)
    names = [c for c in args.configs.split(",") if c]
    unknown = set(names) - fitters.keys()
    if unknown:
        p.error(f"unknown configs {sorted(unknown)}; known: {sorted(fitters)}")
    fold_list = folds(args.folds, args.seed)
    photos = list_photos(args.n, args.seed)
    rows = {n: {"inner": [], "oval": [], "time": [], "points": []} for n in names}
    used = 0
    t0 = time.perf_counter()
    for path in photos:
        pt = prepare(model, path)
        if pt is None:
            continue
        used += 1
        for n in names:
            t = time.perf_counter()
            per_point = np.full(N_DENSE, np.nan)
            inner, outer = heldout_errors(fitters[n], pt.target, fold_list, use_folds=fitters[n].config.dense,
                                          per_point=per_point)
            rows[n]["points"].append(per_point)
            rows[n]["time"].append((time.perf_counter() - t) / args.folds)
            rows[n]["inner"].append(inner)
            rows[n]["oval"].append(outer)
    if not used:
        print("no usable photos", file=sys.stderr)
        return 1
    print(f"Held-out dense-landmark error, {used}/{len(photos)} photos (seed {args.seed}), {args.folds}-fold, "
          f"{cpu_model()}, {time.perf_counter() - t0:.0f} s\n")
    print("| fit | held-out points (IOD) | median | oval, along normal (IOD) | s per fit |")
    print("|---|---|---|---|---|")
    base = np.mean(rows[names[0]]["inner"])
    for n in names:
        r = rows[n]
        m = np.mean(r["inner"])
        rel = "" if n == names[0] else f" ({(m / base - 1) * 100:+.1f} %)"
        print(f"| {n} | {m:.4f}{rel} | {np.median(r['inner']):.4f} | {np.nanmean(r['oval']):.4f} | "
              f"{np.mean(r['time']):.3f} |")
    regions = region_of()
    shown = ["lips_outer", "lips_inner", "eyelids", "brows", "nose", "interior", "oval"]
    print("\nBy region (mean held-out error, IOD; oval along the normal):\n")
    print("| fit | " + " | ".join(shown) + " |")
    print("|---|" + "---|" * len(shown))
    for n in names:
        pts = np.nanmean(np.asarray(rows[n]["points"])[:, :N_MESH], axis=0)
        print(f"| {n} | " + " | ".join(f"{np.nanmean(pts[regions[:N_MESH] == g]):.4f}" for g in shown) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
