"""Command line of the training package.

    python -m training train --config configs/default_head.toml --out runs/NAME [--resume]
    python -m training evaluate --weights W [--data synthetic astronaut FOLDER ...] [--fit fast]
    python -m training export --run runs/NAME --out weights.pt
    python -m training preprocess --folder PHOTOS [--cache DIR] [--split train|holdout] [--workers N]
    python -m training pseudo-label --folder PHOTOS --cache DIR --out LABELS [--fit default]
    python -m training evaluate-real --folder FACES --cache DIR [--weights W]
    python -m training now-predict --now-root NOW --split val --out PRED [--weights W] [--fit fast]
    python -m training now-eval --now-root NOW --split val --pred PRED

Distributed training is PyTorch's own: ``torchrun --nproc_per_node N -m training train ...``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from msma_engine.cli_common import FIT_CHOICES, ExitCode, print_error, set_thread_policy

set_thread_policy()  # before torch is imported

import torch  # noqa: E402

from msma_engine.timing import Stopwatch  # noqa: E402

logger = logging.getLogger("training")


def _face_model(path: str | None):
    from msma_engine.face_model import load_face_model

    return load_face_model(path)


def _cmd_train(args: argparse.Namespace) -> int:
    from training.config import load_config
    from training.trainer import Trainer

    config = load_config(args.config)
    if args.max_steps is not None:
        config.optim.max_steps = args.max_steps
    trainer = Trainer(config, args.out)
    clock = Stopwatch()
    last = trainer.fit(resume=args.resume, progress=not args.no_progress)
    if trainer.is_main:
        final = trainer.export_weights(Path(args.out) / "final.pt", {"train_seconds_this_session": clock.elapsed})
        print(f"trained steps {trainer.start_step}→{trainer.step}; last losses {last}; weights {final}")
    trainer.close()
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from training.config import config_from_dict
    from training.trainer import Trainer, read_checkpoint

    ckpt_path = Path(args.run) / "checkpoints" / "last.pt"
    state = read_checkpoint(ckpt_path)
    config = config_from_dict(state["config"])
    config.run.device = "cpu"
    config.loss.perceptual = 0.0  # the embedder is not needed to export
    trainer = Trainer(config, args.run)
    trainer.load_checkpoint(ckpt_path)
    meta = {}
    log = Path(args.run) / "log.csv"
    if log.exists():
        import csv

        rows = list(csv.DictReader(log.open(newline="")))
        if rows:
            meta["train_elapsed_s_last_session"] = float(rows[-1]["elapsed_s"])
    path = trainer.export_weights(args.out, meta)
    print(f"exported step {trainer.step} of {args.run} to {path}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from msma_engine.network import load_weights
    from training.evaluate import MeanFace, evaluate_photos, evaluate_synthetic, load_photo_folder, markdown_table

    if args.threads:
        torch.set_num_threads(args.threads)
    model = _face_model(args.model)
    lay = model.layout
    net = load_weights(args.weights, None, lay.n_id, lay.n_exp, lay.n_tex)
    label = args.label or Path(args.weights).name
    results, labels = [], []
    for data in args.data:
        if data == "synthetic":
            rows = evaluate_synthetic(net, model, seed=args.seed, n=args.n, fit=args.fit)
            results += rows
            labels += [label] * len(rows)
            if args.reference:
                results += evaluate_synthetic(MeanFace(lay.total), model, seed=args.seed, n=args.n)
                labels.append("mean face (reference)")
            continue
        if data == "astronaut":
            from skimage.data import astronaut

            results.append(evaluate_photos(net, model, [("astronaut", astronaut())], name="astronaut"))
        else:
            folder = Path(data)
            if not folder.is_dir():
                print(f"error: --data {data!r} is neither 'synthetic', 'astronaut' nor a folder", file=sys.stderr)
                return 2
            results.append(evaluate_photos(net, model, load_photo_folder(folder), name=folder.name))
        labels.append(label)
    print(markdown_table(results, model_label=labels))
    return 0


def _cmd_preprocess(args: argparse.Namespace) -> int:
    from training.data.folder import preprocess_folder

    files = None
    if args.split != "all":
        from training.data.split import holdout_files, training_files

        from training.data.split import training_subset

        if args.split == "holdout":
            files = holdout_files(args.folder, args.lfw_people, args.utk_photos)
        else:
            files = training_subset(args.folder, args.subset) if args.subset else training_files(args.folder)
    summary = preprocess_folder(args.folder, args.cache, detector=args.detector, landmarker=args.landmarker,
                                files=files, limit=args.limit, workers=args.workers, jpeg_quality=args.jpeg_quality,
                                min_face_size=args.min_face_size)
    print(summary)
    return 0


def _cmd_now_predict(args: argparse.Namespace) -> int:
    from msma_engine.cli_common import resolve_fit
    from msma_engine.pipeline import Reconstructor
    from training.now import predict_now

    if args.threads:
        torch.set_num_threads(args.threads)
    rec = Reconstructor(args.model, args.weights, device=args.device, detector=args.detector,
                        landmarker=args.landmarker)
    summary = predict_now(args.now_root, args.split, args.out, rec, fit=resolve_fit(args.fit),
                          unit=args.unit, progress=not args.no_progress)
    print(f"NoW {args.split}: {summary}; predictions in {args.out}")
    if summary.failures:
        print(f"{len(summary.failures)} image(s) failed, reasons in {Path(args.out) / 'failures.tsv'}", file=sys.stderr)
        return 1
    return 0


def _cmd_now_eval(args: argparse.Namespace) -> int:
    from training.now import evaluate_now, now_table, write_errors_csv

    results = evaluate_now(args.now_root, args.split, args.pred, refine_iters=args.refine_iters,
                           progress=not args.no_progress)
    csv_path = write_errors_csv(results, args.csv or Path(args.pred) / f"now_{args.split}_errors.csv")
    print(now_table(results))
    print(f"\nper-image errors: {csv_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a network from a config file")
    p.add_argument("--config", required=True, help="TOML/JSON file (see configs/)")
    p.add_argument("--out", required=True, help="run folder (checkpoints, log.csv, curves.png, final.pt)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/last.pt")
    p.add_argument("--max-steps", type=int, default=None, help="override optim.max_steps")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="print the evaluation table of a weights file")
    p.add_argument("--weights", required=True)
    p.add_argument("--model", default=None, help="face model .npz (default: the shipped head)")
    p.add_argument("--data", nargs="+", default=["synthetic"],
                   help="'synthetic' (hold-out), 'astronaut' (scikit-image photo) and/or photo folders")
    p.add_argument("--n", type=int, default=64, help="synthetic hold-out size")
    p.add_argument("--seed", type=int, default=1_000_003, help="synthetic hold-out seed")
    p.add_argument("--fit", default=None, choices=["fast", "default"],
                   help="also report the synthetic hold-out after test-time fitting")
    p.add_argument("--label", default=None, help="model column label")
    p.add_argument("--reference", action="store_true",
                   help="add the mean face (all-zero coefficients) on the synthetic hold-out as a reference row")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("export", help="write the weights of a run's last checkpoint")
    p.add_argument("--run", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("preprocess", help="detect, align and cache a folder of photos (resumable)")
    p.add_argument("--folder", required=True)
    p.add_argument("--cache", default=None, help="cache folder (default: <folder>/.msma_cache)")
    p.add_argument("--detector", default="auto")
    p.add_argument("--landmarker", default="auto")
    p.add_argument("--split", default="all", choices=["all", "train", "holdout"],
                   help="only the training or the evaluation photos of a faces collection (training/data/split.py)")
    p.add_argument("--lfw-people", type=int, default=None, help="holdout: this many LFW people (default all)")
    p.add_argument("--utk-photos", type=int, default=None, help="holdout: this many UTKFace photos (default all)")
    p.add_argument("--subset", type=int, default=None,
                   help="train: a balanced subset of N photos (LFW pairs, UTKFace, CelebA) instead of all")
    p.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality of the cached crops")
    p.add_argument("--min-face-size", type=float, default=None,
                   help="smallest face side in pixels (default: the engine's 40; CelebA's small photos need ~24)")
    p.add_argument("--limit", type=int, default=None, help="process at most N new photos this run")
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.set_defaults(func=_cmd_preprocess)

    from training import evaluate_real, pseudo_labels

    pseudo_labels.register(sub)
    evaluate_real.register(sub)

    p = sub.add_parser("now-predict", help="reconstruct a NoW split into the NoW submission layout (resumable)")
    p.add_argument("--now-root", required=True, help="the NoW data set's root folder")
    p.add_argument("--split", default="val", choices=["val", "test"])
    p.add_argument("--out", required=True, help="prediction root: <out>/<subject>/<challenge>/<name>.obj|.npy")
    p.add_argument("--weights", default=None, help="network weights (default: start from the mean face)")
    p.add_argument("--model", default=None, help="face model .npz (default: the shipped head)")
    p.add_argument("--fit", default="default", choices=FIT_CHOICES, help="test-time fitting quality")
    p.add_argument("--unit", default="m", choices=["m", "mm"], help="unit of the written meshes and landmarks")
    p.add_argument("--device", default="cpu")
    p.add_argument("--detector", default="auto")
    p.add_argument("--landmarker", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_now_predict)

    p = sub.add_parser("now-eval", help="NoW scan-to-mesh errors of predictions (validation scans)")
    p.add_argument("--now-root", required=True, help="the NoW data set's root folder")
    p.add_argument("--split", default="val", choices=["val", "test"])
    p.add_argument("--pred", required=True, help="prediction root in the NoW layout")
    p.add_argument("--csv", default=None, help="per-image errors (default: <pred>/now_<split>_errors.csv)")
    p.add_argument("--refine-iters", type=int, default=10,
                   help="scan-to-mesh refinement iterations after the 7-landmark alignment")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_now_eval)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from msma_engine.errors import MSMAError

    try:
        return int(args.func(args))
    except (MSMAError, OSError, ValueError) as exc:  # ordinary mistakes: one line (-v: the trace too)
        logger.debug("%s failed", args.command, exc_info=True)
        print_error(None, exc)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        print_error(None, "interrupted (a resumed run continues from the last checkpoint)")
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
