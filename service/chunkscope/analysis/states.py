"""States as the measures see them: trajectories [T_i, N], flattened samples, seeded subsamples."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# A progress callback: (done, total); it may raise to stop the work (cancellation).
ProgressFn = Callable[[int, int], None]


def no_progress(done: int, total: int) -> None:
    """The default progress callback: does nothing."""


@dataclass(frozen=True)
class States:
    """One set of states: one or more trajectories of equal width (float64)."""

    trajectories: tuple[np.ndarray, ...]

    @classmethod
    def from_array(cls, array: np.ndarray) -> States:
        """[samples, units] is one trajectory; [trials, time, units] is `trials` trajectories."""
        a = np.asarray(array, dtype=np.float64)
        if a.ndim == 2:
            return cls((a,))
        if a.ndim == 3:
            return cls(tuple(a[i] for i in range(a.shape[0])))
        raise ValueError(f"states must be [samples, units] or [trials, time, units], got {a.shape}")

    @property
    def width(self) -> int:
        return int(self.trajectories[0].shape[1])

    @property
    def n_samples(self) -> int:
        return int(sum(t.shape[0] for t in self.trajectories))

    def samples(self) -> np.ndarray:
        """All time steps of all trajectories as one [samples, units] matrix."""
        if len(self.trajectories) == 1:
            return self.trajectories[0]
        return np.concatenate(self.trajectories, axis=0)


def subsample_rows(n: int, max_samples: int, seed: int) -> np.ndarray | None:
    """Sorted row indices of a seeded subsample of `max_samples` rows, or None to keep all."""
    if n <= max_samples:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_samples, replace=False))
