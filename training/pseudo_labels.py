"""Distillation pseudo-labels: the project's own test-time fit, run offline on cached photos.

For every photo of a preprocessed cache (:mod:`training.data.folder`) the engine's fitter
(:class:`msma_engine.fitting.FaceFitter`, the same analysis-by-synthesis the pipeline runs
after detection) is fitted to the cached 224 crop and its 68 landmarks, from the mean face
posed by PnP or, with ``weights``, from the network's regression. The fitted coefficients —
identity, expression, albedo, pose, light, translation, in the face model's layout — are
written to ``<out>/<cache entry name>.npz`` (``coeffs (n,)`` float32, ``nme_start``,
``nme_fit`` in inter-ocular units). Fits that end above ``max_nme`` are not used as labels
and are listed with their error in ``<out>/rejected.tsv``. ``<out>/meta.json`` records the
face model, the fit preset and the coefficient count; a second run only fits what is in
neither list (resumable), and refuses a folder made for another model or preset.

Nothing here has a teacher with non-commercial weights: the labels come from the project's
own fit of its own CC0 face model.

Command line::

    python -m training pseudo-label --folder FACES --cache CACHE --out LABELS [--fit default] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from msma_engine.errors import MSMAError
from msma_engine.fileio import atomic_write
from msma_engine.timing import Stopwatch

__all__ = ["make_pseudo_labels", "register"]

logger = logging.getLogger(__name__)


def _check_meta(out: Path, meta: dict) -> None:
    path = out / "meta.json"
    if path.exists():
        old = json.loads(path.read_text())
        diff = {k: (old.get(k), v) for k, v in meta.items() if old.get(k) != v}
        if diff:
            raise MSMAError(f"{out} holds pseudo-labels made differently ({diff}: old, new); "
                            "delete it or give another --out folder")
    else:
        path.write_text(json.dumps(meta, indent=2))


def make_pseudo_labels(folder: str | Path, cache: str | Path | None, out: str | Path, fit: str = "default",
                       model_path: str | None = None, weights: str | None = None, split: str = "train",
                       limit: int | None = None, max_nme: float = 0.08, progress: bool = True) -> dict[str, float]:
    """Fit every cached photo of ``split`` and store its coefficients (resumable).

    Args:
        folder, cache: the preprocessed photo folder and its cache (:class:`FaceFolder`).
        out: the label folder.
        fit: fitter preset (``"fast"`` or ``"default"``).
        model_path: face model ``.npz``; None = the shipped head.
        weights: network weights to start the fit from; None = the mean face posed by PnP.
        split: ``"train"`` (the default: labels are for training), ``"holdout"`` or ``"all"``.
        limit: fit at most this many new photos in this run.
        max_nme: fits whose landmark error (inter-ocular units) ends above this are rejected.
        progress: tqdm progress bar.

    Returns:
        ``labelled`` / ``rejected`` (this run), ``done`` (before), ``seconds_per_photo``.
    """
    from tqdm import tqdm

    from msma_engine.face_model import load_face_model
    from msma_engine.fitting import FaceFitter, FitTarget
    from training.data.folder import FaceFolder

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_face_model(model_path).eval()
    _check_meta(out, {"n_coeffs": model.layout.total, "model": model.name, "fit": fit,
                      "start": Path(weights).name if weights else "mean face", "max_nme": max_nme})
    ds = FaceFolder(folder, cache, split=split)
    rejected_path = out / "rejected.tsv"
    rejected = set()
    if rejected_path.exists():
        rejected = {line.split("\t", 1)[0] for line in rejected_path.read_text().splitlines() if line}
    todo = [i for i, f in enumerate(ds.files) if not (out / f.name).exists() and f.name not in rejected]
    counts: dict[str, float] = {"labelled": 0, "rejected": 0, "done": len(ds) - len(todo)}
    if limit is not None:
        todo = todo[:limit]
    net = None
    if weights is not None:
        from msma_engine.network import load_weights

        lay = model.layout
        net = load_weights(weights, n_id=lay.n_id, n_exp=lay.n_exp, n_tex=lay.n_tex).eval()
    fitter = FaceFitter(model, fit)
    clock = Stopwatch()
    for i in tqdm(todo, desc="pseudo-label", disable=not progress, dynamic_ncols=True):
        item = ds[i]
        init = None
        if net is not None:
            with torch.no_grad():
                init = net.predict_crops(item["image"][None]).float()
        target = FitTarget(image=item["image"][None], landmarks=item["landmarks"][None], valid=item["valid"][None])
        res = fitter.fit(target, init=init, rigid_init=init is None)
        name = ds.files[i].name
        nme = res.scores.landmark_nme_fit
        if not np.isfinite(nme) or nme > max_nme:
            with rejected_path.open("a") as f:
                f.write(f"{name}\tlandmark NME {nme:.4f} > {max_nme}\n")
            counts["rejected"] += 1
            continue
        arrays = {"coeffs": res.coeffs[0].cpu().numpy().astype(np.float32),
                  "nme_start": res.scores.landmark_nme_start, "nme_fit": nme, "source": ds.rels[i]}
        atomic_write(out / name, lambda fh: np.savez(fh, **arrays))
        counts["labelled"] += 1
    n = counts["labelled"] + counts["rejected"]
    counts["seconds_per_photo"] = clock.elapsed / n if n else float("nan")
    logger.info("pseudo-labels in %s: %s", out, counts)
    return counts


def _cmd(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        counts = make_pseudo_labels(args.folder, args.cache, args.out, fit=args.fit, model_path=args.model,
                                    weights=args.weights, split=args.split, limit=args.limit, max_nme=args.max_nme,
                                    progress=not args.no_progress)
    except (MSMAError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(counts)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``pseudo-label`` subcommand to ``python -m training``."""
    p = sub.add_parser("pseudo-label", help="fit cached photos offline and store their coefficients (resumable)")
    p.add_argument("--folder", required=True, help="the photo folder given to `preprocess`")
    p.add_argument("--cache", default=None, help="its cache (default: <folder>/.msma_cache)")
    p.add_argument("--out", required=True, help="label folder")
    p.add_argument("--fit", default="default", choices=["fast", "default"])
    p.add_argument("--model", default=None, help="face model .npz (default: the shipped head)")
    p.add_argument("--weights", default=None, help="start the fit from this network (default: the mean face)")
    p.add_argument("--split", default="train", choices=["train", "holdout", "all"])
    p.add_argument("--limit", type=int, default=None, help="fit at most N new photos this run")
    p.add_argument("--max-nme", type=float, default=0.08, help="reject fits above this landmark NME (IOD units)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd)
