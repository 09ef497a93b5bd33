"""The training loop: one step = one batch in, a dict of losses out.

:class:`Trainer` owns the network, optimiser, schedule and checkpoints; the face model,
the renderer and the losses are used as plain functions. Runs on CUDA (with AMP, and
nvdiffrast when installed) or on the CPU; under ``torchrun`` it wraps the network in
DistributedDataParallel (NCCL on CUDA, gloo on the CPU) and every process trains on its
own slice of each global batch.

Determinism: the network is initialised from ``run.seed``; the batch of step ``k`` is a
pure function of ``(data.seed, k, rank)`` (see :class:`StepSampler`), so a run resumed
from a checkpoint sees exactly the batches an uninterrupted run would have seen.

Run folder layout (``--out``)::

    config.json          the parsed configuration
    log.csv              one row every ``run.log_every`` steps
    curves.png           loss curves, redrawn at every checkpoint
    checkpoints/last.pt  model, optimiser, scheduler, scaler, step, RNG states
    final.pt             weights in the engine's format (msma_engine.network.save_weights)
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import os
import pickle
import random
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Sampler

from msma_engine.errors import BackendUnavailableError, CheckpointError
from msma_engine.fileio import atomic_write
from msma_engine.face_model import FaceModel, load_face_model
from msma_engine.network import build_network, load_weights, save_weights
from msma_engine.render import RenderContext, channels_first, render_mesh
from msma_engine.timing import Stopwatch
from training.config import Config, config_to_dict
from training.identity import load_identity_embedder
from training.real_losses import real_losses
from msma_engine.losses import (
    coefficient_loss,
    coefficient_regularisation,
    gamma_regularisation,
    landmark_loss,
    landmark_weights,
    perceptual_loss,
    photometric_loss,
    reflectance_loss,
    vertex_loss,
)

__all__ = ["StepSampler", "Trainer", "build_dataset", "resolve_device"]

logger = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; ``"cuda"`` without CUDA raises."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError("run.device = 'cuda' but torch sees no CUDA device")
    return torch.device(name)


class StepSampler(Sampler[list[int]]):
    """Batch sampler whose batch ``k`` depends only on ``(seed, k, rank)``.

    Each epoch is a permutation of the dataset seeded by ``(seed, epoch)`` (identity for
    ``shuffle=False``); global batch ``k`` takes positions ``[k·B·W, (k+1)·B·W)`` of the
    epoch-concatenated stream, and process ``rank`` takes its ``B`` of them.

    Args:
        length: dataset size.
        batch_size: per-process batch size ``B``.
        steps: number of batches to yield.
        start_step: first step (for resuming).
        seed: shuffle seed.
        shuffle: permute each epoch.
        rank, world_size: this process and the number of processes ``W``.
    """

    def __init__(self, length: int, batch_size: int, steps: int, start_step: int = 0, seed: int = 0,
                 shuffle: bool = True, rank: int = 0, world_size: int = 1) -> None:
        self.length, self.batch_size, self.steps, self.start_step = length, batch_size, steps, start_step
        self.seed, self.shuffle, self.rank, self.world_size = seed, shuffle, rank, world_size
        self._perm_epoch, self._perm = -1, None

    def _position(self, pos: int) -> int:
        epoch, offset = divmod(pos, self.length)
        if not self.shuffle:
            return offset
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.length)
            self._perm_epoch = epoch
        return int(self._perm[offset])

    def batch(self, step: int) -> list[int]:
        """Dataset indices of this process's share of global batch ``step``."""
        first = (step * self.world_size + self.rank) * self.batch_size
        return [self._position(first + j) for j in range(self.batch_size)]

    def __iter__(self):
        for step in range(self.start_step, self.steps):
            yield self.batch(step)

    def __len__(self) -> int:
        return max(0, self.steps - self.start_step)


def build_dataset(config: Config, face_model: FaceModel, length: int | None = None) -> Dataset:
    """The training dataset the config asks for (on-the-fly synthetic or a photo folder, plus
    real photos mixed in when ``real.folder`` is set)."""
    if config.data.generator == "device":
        from training.data.device_batches import DeviceBatches
        from training.data.folder import FaceFolder

        real = (FaceFolder(config.real.folder, cache=config.real.cache, split="train", labels=config.real.labels)
                if config.real.folder else None)
        return DeviceBatches(face_model, config.data.synthetic, config.data.seed, real, config.real.fraction,
                             config.real.pair_fraction, config.run.num_workers)
    if config.data.source == "synthetic":
        from training.data.synthetic import SyntheticFaces

        data = SyntheticFaces(face_model, config.data.synthetic, seed=config.data.seed,
                              length=length or config.data.epoch_size)
    else:
        from training.data.folder import FaceFolder

        data = FaceFolder(config.data.folder, cache=config.data.cache)
    if config.real.folder:
        from training.data.folder import FaceFolder
        from training.data.mixed import MixedFaces

        real = FaceFolder(config.real.folder, cache=config.real.cache, split="train", labels=config.real.labels)
        data = MixedFaces(data, real, config.real.fraction, config.real.pair_fraction)
    return data


class Trainer:
    """Trains a coefficient regressor with the paper's losses.

    Args:
        config: the parsed configuration.
        out_dir: run folder (created).
        face_model: the face model; None = ``config.model.face_model`` or the shipped head.
        dataset: training data; None = :func:`build_dataset`.
    """

    def __init__(self, config: Config, out_dir: str | Path, face_model: FaceModel | None = None,
                 dataset: Dataset | None = None) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = resolve_device(config.run.device)
        if self.world_size > 1 and not dist.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            dist.init_process_group(backend)
            logger.info("rank %d/%d joined the %s process group", self.rank, self.world_size, backend)
        if self.device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            self.device = torch.device("cuda", torch.cuda.current_device())
        if config.run.threads:
            torch.set_num_threads(config.run.threads)
        self.is_main = self.rank == 0

        self._seed_everything(config.run.seed)
        cpu_model = face_model or load_face_model(config.model.face_model)
        self.dataset = dataset if dataset is not None else build_dataset(config, cpu_model, self._dataset_length())
        # The data pipeline renders with the CPU copy (workers must not touch CUDA); the
        # losses use a copy on the training device.
        self.face_model = copy.deepcopy(cpu_model).to(self.device) if self.device.type != "cpu" else cpu_model
        lay = self.face_model.layout
        if config.model.init_weights:
            self.net = load_weights(config.model.init_weights, config.model.arch, lay.n_id, lay.n_exp, lay.n_tex)
        else:
            self.net = build_network(config.model.arch, lay.n_id, lay.n_exp, lay.n_tex)
        self.net.to(self.device)
        self.model = self.net
        if self.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.net, device_ids=device_ids)

        opt = config.optim
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=opt.lr)
        self.steps_per_epoch = max(1, config.data.epoch_size // (opt.batch_size * self.world_size))
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=opt.decay_every_epochs * self.steps_per_epoch, gamma=opt.lr_decay)
        self.use_amp = config.run.amp and self.device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if config.run.amp_dtype == "bfloat16" else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)
        if config.run.channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.ctx = RenderContext(config.run.render_backend if self.device.type == "cuda" else "torch")
        self.lm_weights = landmark_weights(config.loss.landmark_nose, config.loss.landmark_mouth).to(self.device)
        self.embedder = None
        if config.loss.perceptual > 0:
            try:
                self.embedder = load_identity_embedder(config.run.perceptual_weights).to(self.device)
            except BackendUnavailableError as exc:
                logger.warning("perceptual loss disabled: %s", exc)
        self.step = 0
        self.start_step = 0

    # --- set-up helpers -----------------------------------------------------------------
    @property
    def max_steps(self) -> int:
        opt = self.config.optim
        return opt.max_steps if opt.max_steps is not None else opt.epochs * self.steps_per_epoch

    def _dataset_length(self) -> int:
        """Synthetic data is generated per index: give every step fresh samples."""
        cfg = self.config
        if cfg.data.source != "synthetic":
            return cfg.data.epoch_size
        spe = max(1, cfg.data.epoch_size // (cfg.optim.batch_size * self.world_size))
        steps = cfg.optim.max_steps if cfg.optim.max_steps is not None else cfg.optim.epochs * spe
        return max(cfg.data.epoch_size, steps * cfg.optim.batch_size * self.world_size)

    @staticmethod
    def _seed_everything(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    # --- the step -----------------------------------------------------------------------
    def compute_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Forward pass and every active loss term.

        Args:
            batch: ``image (B, 3, 224, 224)``, ``landmarks (B, 68, 2)``, ``mask (B, 1, 224, 224)``
                (skin), and for synthetic data ``coeffs (B, n)`` and ``vertices (B, V, 3)``.

        Returns:
            Weighted terms by name and their sum under ``"total"`` (scalars).
        """
        w = self.config.loss
        images = batch["image"]
        net_in = images
        size = self.config.model.input_size
        if size != images.shape[-1]:
            net_in = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        if self.config.run.channels_last:
            net_in = net_in.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            pred = self.model(net_in)
        pred = pred.float()
        fm = self.face_model
        out = fm(pred)
        c = fm.layout.split(pred)
        losses: dict[str, torch.Tensor] = {}
        if w.landmark > 0 and "landmarks" in batch:
            losses["landmark"] = w.landmark * landmark_loss(out.landmarks_2d, batch["landmarks"], self.lm_weights)
        if w.photometric > 0 or (w.perceptual > 0 and self.embedder is not None):
            cam = fm.camera
            rend = render_mesh(self.ctx, out.vertices, fm.triangles, cam.image_size, project=cam.world_to_clip,
                               colors=out.vertex_colors, normals=out.normals, cull_backfaces=True)
            rendered, face = channels_first(rend.image), channels_first(rend.mask)
            if w.photometric > 0:
                losses["photometric"] = w.photometric * photometric_loss(rendered, images, face * batch["mask"])
            if w.perceptual > 0 and self.embedder is not None:
                composite = rendered * face + images * (1 - face)
                losses["perceptual"] = w.perceptual * perceptual_loss(self.embedder(composite), self.embedder(images))
        if w.regularization > 0:
            losses["regularization"] = w.regularization * coefficient_regularisation(
                c.id, c.exp, c.tex, w.reg_id, w.reg_exp, w.reg_tex)
        if w.gamma > 0:
            losses["gamma"] = w.gamma * gamma_regularisation(c.gamma)
        if w.reflectance > 0:
            losses["reflectance"] = w.reflectance * reflectance_loss(out.vertex_albedo, fm.skin_mask)
        if w.coeff > 0 and "coeffs" in batch:
            losses["coeff"] = w.coeff * coefficient_loss(pred, batch["coeffs"], fm.layout.slices(), w.coeff_groups)
        if w.vertex > 0 and "vertices" in batch:
            losses["vertex"] = w.vertex * vertex_loss(out.vertices, batch["vertices"], fm.face_region)
        if w.shape > 0 and "coeffs" in batch:
            gt = fm.layout.split(batch["coeffs"])
            losses["shape"] = w.shape * vertex_loss(out.vertices_model, fm.shape(gt.id, gt.exp), fm.face_region)
        losses.update(real_losses(self.config.real, pred, batch, fm, out.vertices))
        losses["total"] = sum(losses.values()) if losses else pred.sum() * 0
        return losses

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One optimiser step on ``batch``; returns the loss values (floats)."""
        self.model.train()
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        losses = self.compute_losses(batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses["total"]).backward()
        if self.config.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.config.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        values = {k: float(v.detach()) for k, v in losses.items()}
        if not all(math.isfinite(v) for v in values.values()):
            logger.warning("non-finite loss at step %d: %s", self.step, values)
        return values

    # --- checkpoints --------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoints" / "last.pt"

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Write model, optimiser, scheduler, scaler, step and RNG states (atomic).

        Only tensors and plain Python values are stored, so :func:`read_checkpoint` can load
        the file with ``torch.load(weights_only=True)`` (no pickled code runs).
        """
        path = Path(path) if path is not None else self.checkpoint_path
        path.parent.mkdir(parents=True, exist_ok=True)
        np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
        state = {
            "step": self.step,
            "arch": self.net.arch,
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "config": config_to_dict(self.config),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "numpy": {"name": str(np_name), "keys": torch.from_numpy(np_keys.astype(np.int64)),
                          "pos": int(np_pos), "has_gauss": int(np_has_gauss), "cached_gaussian": float(np_gauss)},
                "python": random.getstate(),
            },
        }
        atomic_write(path, lambda fh: torch.save(state, fh))
        logger.info("checkpoint at step %d → %s", self.step, path)
        return path

    def load_checkpoint(self, path: str | Path | None = None) -> int:
        """Restore a checkpoint written by :meth:`save_checkpoint`; returns its step.

        Raises:
            CheckpointError: unreadable, unsafe or truncated file, or another architecture.
        """
        path = Path(path) if path is not None else self.checkpoint_path
        state = read_checkpoint(path, map_location=self.device)
        if state["arch"] != self.net.arch:
            raise CheckpointError(f"checkpoint {path} is for {state['arch']!r}, this run trains {self.net.arch!r}")
        try:
            self.net.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
            rng = state["rng"]
            torch.set_rng_state(rng["torch"].cpu())
            if rng["cuda"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])
            np.random.set_state(_numpy_rng_state(rng["numpy"]))
            random.setstate(_python_rng_state(rng["python"]))
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"checkpoint {path} does not fit this run: {exc}") from exc
        self.step = int(state["step"])
        logger.info("resumed from %s at step %d", path, self.step)
        return self.step

    def export_weights(self, path: str | Path, extra_meta: dict | None = None) -> Path:
        """Save the network in the engine's weights format with training metadata.

        Stored as float16: half the size of float32 for files that get committed. On the
        msma_light checkpoint of the shipped recipe it moved the regressed coefficients by
        ≤ 8e-4 and vertices by ≤ 0.06 mm, against a network error of millimetres.
        """
        meta = {
            "steps": self.step,
            "images_seen": self.step * self.config.optim.batch_size * self.world_size,
            "face_model": self.face_model.name,
            "input_size": self.config.model.input_size,
            "config": config_to_dict(self.config),
        }
        meta.update(extra_meta or {})
        return save_weights(path, self.net, meta=meta, overwrite=True, half=True)

    # --- logging ------------------------------------------------------------------------
    def _append_log(self, row: dict) -> None:
        path = self.out_dir / "log.csv"
        new = not path.exists()
        fields = list(row)
        if not new:
            with path.open(newline="") as f:
                header = next(csv.reader(f), [])
            if header:
                fields = header + [k for k in row if k not in header]
                if fields != header:  # a new loss term appeared: rewrite with the wider header
                    rows = list(csv.DictReader(path.open(newline="")))
                    with path.open("w", newline="") as f:
                        writer = csv.DictWriter(f, fieldnames=fields)
                        writer.writeheader()
                        writer.writerows(rows)
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, restval="")
            if new:
                writer.writeheader()
            writer.writerow(row)

    def plot_curves(self) -> Path | None:
        """Redraw ``curves.png`` from ``log.csv``."""
        path = self.out_dir / "log.csv"
        if not path.exists():
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = list(csv.DictReader(path.open(newline="")))
        if not rows:
            return None
        skip = {"step", "epoch", "lr", "images_per_s", "elapsed_s"}
        steps = [int(r["step"]) for r in rows]
        fig, ax = plt.subplots(figsize=(8, 5))
        for key in rows[0]:
            if key in skip:
                continue
            vals = [float(r[key]) if r.get(key) else float("nan") for r in rows]
            ax.plot(steps, vals, label=key)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("weighted loss")
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
        out = self.out_dir / "curves.png"
        fig.savefig(out, dpi=100, bbox_inches="tight")
        plt.close(fig)
        return out

    # --- the loop -----------------------------------------------------------------------
    def fit(self, resume: bool = False, progress: bool = True) -> dict[str, float]:
        """Train until ``max_steps``; checkpoint every ``run.checkpoint_every`` steps.

        Args:
            resume: continue from ``checkpoints/last.pt`` when it exists.
            progress: show a tqdm progress bar (main process only).

        Returns:
            The loss values of the last step (empty when nothing was left to train).
        """
        from tqdm import tqdm

        cfg = self.config
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume and self.checkpoint_path.exists():
            self.load_checkpoint()
        elif resume:
            logger.info("no checkpoint in %s; starting from step 0", self.checkpoint_path.parent)
        self.start_step = self.step
        if self.is_main:
            (self.out_dir / "config.json").write_text(json.dumps(config_to_dict(cfg), indent=2))
        if hasattr(self.dataset, "batch_iterator"):  # batches made on the device (training.data.device_batches)
            loader = self.dataset.batch_iterator(cfg.optim.batch_size, self.max_steps, self.step, self.device,
                                                 rank=self.rank, world_size=self.world_size)
        else:
            if hasattr(self.dataset, "batch_sampler"):  # mixed synthetic + real batches
                sampler = self.dataset.batch_sampler(cfg.optim.batch_size, self.max_steps, self.step, cfg.data.seed,
                                                     rank=self.rank, world_size=self.world_size)
            else:
                sampler = StepSampler(len(self.dataset), cfg.optim.batch_size, self.max_steps, self.step,
                                      cfg.data.seed, shuffle=cfg.data.source != "synthetic", rank=self.rank,
                                      world_size=self.world_size)
            loader = DataLoader(self.dataset, batch_sampler=sampler, num_workers=cfg.run.num_workers,
                                pin_memory=self.device.type == "cuda", persistent_workers=False)
        bar = tqdm(total=self.max_steps, initial=self.step, disable=not (progress and self.is_main),
                   desc=f"train {self.net.arch}", dynamic_ncols=True)
        last: dict[str, float] = {}
        window, n_window, run_clock = Stopwatch(), 0, Stopwatch()
        since_checkpoint = run_clock
        for batch in loader:
            last = self.train_step(batch)
            n_window += batch["image"].shape[0] * self.world_size
            bar.update(1)
            bar.set_postfix(loss=f"{last['total']:.4g}")
            if self.is_main and (self.step % cfg.run.log_every == 0 or self.step == self.max_steps):
                row = {"step": self.step, "epoch": f"{self.step / self.steps_per_epoch:.4f}",
                       "lr": f"{self.scheduler.get_last_lr()[0]:.3e}",
                       "images_per_s": f"{n_window / max(window.elapsed, 1e-9):.3f}",
                       "elapsed_s": f"{run_clock.elapsed:.1f}"}
                row.update({k: f"{v:.6g}" for k, v in last.items()})
                self._append_log(row)
                window, n_window = Stopwatch(), 0
            timed, out_of_time = self._clock(run_clock, since_checkpoint)
            if self.step % cfg.run.checkpoint_every == 0 or self.step == self.max_steps or timed or out_of_time:
                if self.is_main:
                    self.save_checkpoint()
                    self.plot_curves()
                since_checkpoint = Stopwatch()
                if self.world_size > 1:
                    dist.barrier()
            if out_of_time:
                logger.info("run.max_minutes = %g reached at step %d; resume to continue",
                            cfg.run.max_minutes, self.step)
                break
        bar.close()
        return last

    def _clock(self, run_clock: Stopwatch, since_checkpoint: Stopwatch) -> tuple[bool, bool]:
        """(a timed checkpoint is due, the session's time is up), agreed by every process."""
        run = self.config.run
        flags = [run.checkpoint_minutes > 0 and since_checkpoint.elapsed >= 60 * run.checkpoint_minutes,
                 run.max_minutes > 0 and run_clock.elapsed >= 60 * run.max_minutes]
        if self.world_size > 1 and (run.checkpoint_minutes > 0 or run.max_minutes > 0):
            t = torch.tensor([float(f) for f in flags], device=self.device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            flags = [bool(v) for v in t.tolist()]
        return flags[0], flags[1]

    def close(self) -> None:
        """Leave the process group (torchrun runs)."""
        if self.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()



_CHECKPOINT_KEYS = ("step", "arch", "model", "optimizer", "scheduler", "scaler", "config", "rng")


def _legacy_numpy_globals() -> list:
    """NumPy's array-rebuilding functions, for checkpoints that stored ``np.random.get_state()`` as is."""
    try:
        from numpy._core.multiarray import _reconstruct  # NumPy 2
    except ImportError:
        from numpy.core.multiarray import _reconstruct
    return [_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a training checkpoint without running pickled code (``weights_only=True``).

    Checkpoints of earlier versions, which stored NumPy's RNG state as an array, are read
    with only NumPy's array constructor allowed in addition.

    Raises:
        CheckpointError: the file is missing, truncated, not a checkpoint, or asks to run
            code (a crafted file), with the file and the reason in the message.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with torch.serialization.safe_globals(_legacy_numpy_globals()):
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path} is not a checkpoint this program loads safely (it holds objects other "
                              f"than tensors and plain values): {str(exc).splitlines()[0]}") from exc
    except Exception as exc:  # torch raises many types for truncated/foreign files
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict) or any(k not in state for k in _CHECKPOINT_KEYS):
        found = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} is not a training checkpoint: expected keys {list(_CHECKPOINT_KEYS)}, "
                              f"found {found}")
    return state


def _numpy_rng_state(saved) -> tuple:
    if isinstance(saved, dict):
        return (saved["name"], saved["keys"].numpy().astype(np.uint32), saved["pos"], saved["has_gauss"],
                saved["cached_gaussian"])
    return tuple(saved)  # legacy: the tuple np.random.get_state() returned


def _python_rng_state(saved) -> tuple:
    version, internal, gauss = saved
    return int(version), tuple(int(v) for v in internal), gauss
