"""Synthetic and real batches in one training run.

:class:`MixedFaces` puts a synthetic dataset (indices ``[0, S)``) and a real one
(:class:`~training.data.folder.FaceFolder`, indices ``[S, S + R)``) behind one index space.
Every batch is all synthetic or all real, so each keeps its own fields (exact coefficients
and vertices for synthetic renders; pseudo-labels and person numbers for photos) and the
trainer applies to each batch the terms its fields allow.

:class:`MixedStepSampler` decides per step: step ``k`` is real with probability
``fraction``, drawn from ``(seed, k)`` alone — like :class:`training.trainer.StepSampler`,
batch ``k`` is a pure function of ``(seed, k, rank)``, so resumed runs see the batches an
uninterrupted run would have. A real batch takes ``pair_fraction`` of its photos as pairs
of one LFW person (for the identity-consistency loss) and the rest at random; a synthetic
batch takes fresh consecutive synthetic indices.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

__all__ = ["MixedFaces", "MixedStepSampler"]


class MixedFaces(Dataset):
    """Synthetic ``[0, S)`` then real ``[S, S + R)`` samples.

    Args:
        synthetic: e.g. :class:`training.data.synthetic.SyntheticFaces`.
        real: :class:`training.data.folder.FaceFolder` (its ``person`` array gives the pairs).
        fraction, pair_fraction: see :class:`MixedStepSampler`.
    """

    def __init__(self, synthetic: Dataset, real: Dataset, fraction: float = 0.5, pair_fraction: float = 0.5) -> None:
        self.synthetic, self.real = synthetic, real
        self.fraction, self.pair_fraction = float(fraction), float(pair_fraction)
        self.n_synth = len(synthetic)

    def __len__(self) -> int:
        return self.n_synth + len(self.real)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if index < self.n_synth:
            return self.synthetic[index]
        return self.real[index - self.n_synth]

    def batch_sampler(self, batch_size: int, steps: int, start_step: int = 0, seed: int = 0, rank: int = 0,
                      world_size: int = 1) -> "MixedStepSampler":
        """The sampler the trainer uses for this dataset (same arguments as ``StepSampler``)."""
        person = np.asarray(getattr(self.real, "person", np.full(len(self.real), -1)))
        return MixedStepSampler(self.n_synth, person, batch_size, steps, start_step, seed, self.fraction,
                                self.pair_fraction, rank, world_size)


class MixedStepSampler(Sampler[list[int]]):
    """Per-step choice between a synthetic and a real batch (see module doc).

    Args:
        n_synth: synthetic samples (real index ``i`` is ``n_synth + i``).
        person: ``(R,)`` person number of every real photo (-1 unknown).
        batch_size: per-process batch ``B``.
        steps, start_step: batches ``[start_step, steps)`` are yielded.
        seed: draws of step ``k`` depend on ``(seed, k, rank)`` only.
        fraction: probability that a step is real.
        pair_fraction: share of a real batch drawn as same-person pairs.
        rank, world_size: this process and the number of processes.
    """

    def __init__(self, n_synth: int, person: np.ndarray, batch_size: int, steps: int, start_step: int = 0,
                 seed: int = 0, fraction: float = 0.5, pair_fraction: float = 0.5, rank: int = 0,
                 world_size: int = 1) -> None:
        self.n_synth, self.batch_size, self.steps, self.start_step = n_synth, batch_size, steps, start_step
        self.person = np.asarray(person)
        self.seed, self.fraction, self.pair_fraction = seed, fraction, pair_fraction
        self.rank, self.world_size = rank, world_size
        groups: dict[int, list[int]] = {}
        for i, p in enumerate(self.person.tolist()):
            if p >= 0:
                groups.setdefault(p, []).append(i)
        self.pairs = [np.array(v) for v in groups.values() if len(v) >= 2]

    def is_real(self, step: int) -> bool:
        """Whether global batch ``step`` is a real batch (the same on every rank)."""
        if len(self.person) == 0:
            return False
        return bool(np.random.default_rng([self.seed, step, 7]).random() < self.fraction)

    def batch(self, step: int) -> list[int]:
        """Dataset indices of this process's share of global batch ``step``."""
        b = self.batch_size
        if not self.is_real(step):
            first = (step * self.world_size + self.rank) * b
            return [(first + j) % self.n_synth for j in range(b)]
        rng = np.random.default_rng([self.seed, step, self.rank, 11])
        out: list[int] = []
        n_pairs = int(b * self.pair_fraction) // 2 if self.pairs else 0
        for g in rng.choice(len(self.pairs), size=n_pairs, replace=len(self.pairs) < n_pairs) if n_pairs else []:
            out.extend(rng.choice(self.pairs[g], size=2, replace=False).tolist())
        out.extend(rng.integers(0, len(self.person), size=b - len(out)).tolist())
        return [self.n_synth + i for i in out]

    def __iter__(self):
        for step in range(self.start_step, self.steps):
            yield self.batch(step)

    def __len__(self) -> int:
        return max(0, self.steps - self.start_step)
