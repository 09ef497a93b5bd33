"""Synthetic hold-out of the fit: identity, expression recovery; prints a table.

Samples come from the training generator (:class:`training.data.synthetic.SyntheticFaces`,
shipped settings, hold-out seed 1_000_003: random identity, pose up to ±90° yaw, about 3
active ARKit units with uniform weights, occluders and image augmentations). ``--sampling``
picks how the active units are drawn: ``plausible`` (the generator's default: no exclusive
pair such as jawLeft + jawRight together) or ``uniform`` (any units, the sampling before
issue 17's second session); ``both`` prints a table for each. Each sample is fitted from
the mean face (no network):

- ``before``: the pre-issue-17 fit (68 points, inner-mouth weight 20, Gaussian expression
  prior) on the ground-truth 68 landmarks, noise-free — the setting of the 2.80 mm figure;
- ``lasso (…)``: the default fit without its debiasing refit (``FitConfig.debias_iters=0``,
  the first issue-17 fit), on the same points as the ``after`` row of the same name;
- ``after (Face Mesh)``: the default fit on the dense points the detector finds on the
  synthetic image (samples where Face Mesh finds no face are left out of every row);
- ``after (true dense)``: the default fit on the model's own projected dense points.

Metrics: ``identity mm`` — mean face-region distance between the fitted and the true
neutral shapes (mean + identity, no expression) after rigid alignment; ``vertex mm`` — the
same for the posed shape with expression (the training evaluation's metric); expression
MAE on the active units (true weight > 0) and the share of inactive units fitted above 0.2
(phantoms). Eye-look units are left out of the expression metrics (the renders have no
eyeballs, so no iris to read them from) and so are units without displacement. ``MAE``
also leaves out units that move none of the dense points (``tongueOut``: no landmark fit
can see it); ``MAE (all)`` keeps them (the first session's definition).

Usage::

    python benchmarks/bench_fit_synthetic.py [--n 40] [--sampling plausible|uniform|both]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

from msma_engine.detect.base import FaceDetection  # noqa: E402
from msma_engine.detect.mediapipe_mesh import MediaPipeLandmarker, mesh_to_ibug68  # noqa: E402
from msma_engine.errors import NoFaceError  # noqa: E402
from msma_engine.expression_prior import EYE_LOOK, ExpressionPrior  # noqa: E402
from msma_engine.face_model import load_face_model  # noqa: E402
from msma_engine.fitting import FaceFitter, FitConfig, FitTarget, LandmarkRows  # noqa: E402
from training.config import SyntheticConfig  # noqa: E402
from training.data.synthetic import SyntheticFaces  # noqa: E402
from training.evaluate import expression_recovery  # noqa: E402
from training.metrics import aligned_vertex_error_mm  # noqa: E402

GEOMETRY_ONLY = dict(light_rounds=0, photo_steps=0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--seed", type=int, default=1_000_003)
    p.add_argument("--sampling", choices=("plausible", "uniform", "both"), default="both")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    model = load_face_model()
    fitters = {
        "before (68 true points)": FaceFitter(model, FitConfig(dense=False, inner_mouth_weight=20.0, **GEOMETRY_ONLY),
                                              prior=ExpressionPrior.gaussian_only(model)),
        "lasso (Face Mesh)": FaceFitter(model, FitConfig(debias_iters=0, **GEOMETRY_ONLY)),
        "lasso (true dense)": FaceFitter(model, FitConfig(debias_iters=0, **GEOMETRY_ONLY)),
        "after (Face Mesh)": FaceFitter(model, FitConfig(**GEOMETRY_ONLY)),
        "after (true dense)": FaceFitter(model, FitConfig(**GEOMETRY_ONLY)),
    }
    marker = MediaPipeLandmarker()
    samplings = ("plausible", "uniform") if args.sampling == "both" else (args.sampling,)
    for sampling in samplings:
        cfg = SyntheticConfig(plausible_expressions=sampling == "plausible")
        table(model, fitters, marker, SyntheticFaces(model, cfg, seed=args.seed, length=args.n), sampling)
    return 0


def table(model, fitters: dict[str, FaceFitter], marker: MediaPipeLandmarker, ds: SyntheticFaces,
          sampling: str) -> None:
    """Fit every sample of ``ds`` with every fitter and print the table."""
    moving = [i for i, n in enumerate(model.expression_names)
              if n not in EYE_LOOK and float(model.exp_basis[i].abs().max()) > 1e-7]
    rows_dense = LandmarkRows.of_surface(model, model.dense_landmark_vertices, model.dense_landmark_weights)
    visible = [i for i in moving if float(rows_dense.exp[i].norm(dim=-1).max()) > 1e-4]
    rows = {k: {"id": [], "vert": [], "mae": [], "mae_all": [], "phantom": []} for k in fitters}
    lay = model.layout
    t0 = time.perf_counter()
    skipped = 0
    for i in range(len(ds)):
        item = ds[i]
        img8 = (item["image"].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        lm = item["landmarks"]
        lo, hi = lm.min(0).values.numpy(), lm.max(0).values.numpy()
        pad = 0.1 * (hi - lo)
        det = FaceDetection(box=np.r_[lo - pad, hi + pad], score=1.0, points5=np.zeros((5, 2)), source="truth")
        try:
            mesh = marker.mesh(img8, det)[:, :2]
        except NoFaceError:
            skipped += 1
            continue
        gt = lay.split(item["coeffs"][None])
        true_dense = fitters["after (true dense)"].dense_points(item["coeffs"][None])
        base = dict(image=item["image"][None], valid=torch.ones(1, 1, 224, 224))
        mesh68 = torch.as_tensor(mesh_to_ibug68(mesh), dtype=torch.float32)[None]
        mesh_t = torch.as_tensor(mesh, dtype=torch.float32)[None]
        targets = {
            "before (68 true points)": FitTarget(landmarks=lm[None], **base),
            "after (Face Mesh)": FitTarget(landmarks=mesh68, dense=mesh_t, **base),
            "lasso (true dense)": FitTarget(landmarks=lm[None], dense=true_dense, **base),
            "lasso (Face Mesh)": FitTarget(landmarks=mesh68, dense=mesh_t, **base),
            "after (true dense)": FitTarget(landmarks=lm[None], dense=true_dense, **base),
        }
        with torch.no_grad():
            neutral_gt = model.shape(gt.id, torch.zeros_like(gt.exp))
        for name, fitter in fitters.items():
            c = lay.split(fitter.fit(targets[name]).coeffs)
            with torch.no_grad():
                neutral = model.shape(c.id, torch.zeros_like(c.exp))
                posed = model.shape(c.id, c.exp)
                rows[name]["id"].append(float(aligned_vertex_error_mm(neutral, neutral_gt, model.face_region)[0]))
                rows[name]["vert"].append(float(aligned_vertex_error_mm(posed, model.shape(gt.id, gt.exp),
                                                                        model.face_region)[0]))
            mae, phantom = expression_recovery(c.exp[0, visible].numpy(), gt.exp[0, visible].numpy())
            rows[name]["mae"].append(mae)
            rows[name]["phantom"].append(phantom)
            rows[name]["mae_all"].append(expression_recovery(c.exp[0, moving].numpy(), gt.exp[0, moving].numpy())[0])
    used = len(ds) - skipped
    print(f"Synthetic hold-out (seed {ds.seed}, {sampling} expressions): {used}/{len(ds)} samples with a Face Mesh, "
          f"fit from the mean face, {cpu_model()}, {time.perf_counter() - t0:.0f} s\n")
    print("| fit | identity mm | vertex mm | expression MAE (active) | MAE (all) | phantom units > 0.2 |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {np.mean(r['id']):.2f} | {np.mean(r['vert']):.2f} | {np.nanmean(r['mae']):.3f} | "
              f"{np.nanmean(r['mae_all']):.3f} | {100 * np.mean(r['phantom']):.1f} % |")
    print()


if __name__ == "__main__":
    sys.exit(main())
