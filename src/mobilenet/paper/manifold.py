"""Figure 1 of MobileNetV2 (Sandler et al. 2018, arXiv 1801.04381): ReLU destroys a low-dimensional manifold.

A 2-D spiral is embedded into n dimensions by a random matrix T, passed through ReLU and projected back with
the pseudo-inverse of T. For small n many points collapse into each other; for large n the picture is bent
but the information is still there. The paper shows this by eye; here it is also counted: a point is
*recoverable* when the rows of T active at it (T x > 0) still have rank 2, because then x is the unique
solution of those rows' equations, read off ReLU(T x) exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The embedding dimensions of the five panels after the input in Figure 1.
DIMENSIONS: tuple[int, ...] = (2, 3, 5, 15, 30)

SPIRAL_POINTS = 500
SPIRAL_TURNS = 2.5


def spiral(points: int = SPIRAL_POINTS, turns: float = SPIRAL_TURNS) -> np.ndarray:
    """An Archimedean spiral of ``points`` points around the origin, shape ``(points, 2)``, radius 0.1 to 1.

    The radius starts above zero: at the origin every row of T is inactive, whatever T is.
    """
    if points < 2 or turns <= 0:
        raise ValueError(f"need at least 2 points and a positive number of turns, got {points} and {turns}")
    along = np.linspace(0.0, 1.0, points)
    angle = 2.0 * np.pi * turns * along
    radius = 0.1 + 0.9 * along
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)


@dataclass(frozen=True, eq=False)  # eq=False: comparing numpy arrays with == has no single truth value
class ReluRoundTrip:
    """One panel of Figure 1: 2-D points through ``ReLU(T x)`` in ``dim`` dimensions and back with ``pinv(T)``.

    ``matrix`` is T, shape ``(dim, 2)``; ``embedded`` is ``ReLU(T x)``, shape ``(points, dim)``; ``restored``
    is ``pinv(T) @ ReLU(T x)``, shape ``(points, 2)``; ``recoverable`` says, per point, whether the active
    rows of T have rank 2. The arrays are read-only.
    """

    dim: int
    matrix: np.ndarray
    embedded: np.ndarray
    restored: np.ndarray
    recoverable: np.ndarray

    @property
    def share(self) -> float:
        """The share of points whose position survives the ReLU."""
        return float(self.recoverable.mean())


def relu_round_trip(points2d: np.ndarray, dim: int, rng: np.random.Generator) -> ReluRoundTrip:
    """Embed ``points2d`` (shape ``(points, 2)``) with a standard normal ``dim x 2`` matrix, ReLU, project back."""
    points2d = np.asarray(points2d, dtype=np.float64)
    if points2d.ndim != 2 or points2d.shape[1] != 2:
        raise ValueError(f"expected points of shape (points, 2), got {points2d.shape}")
    if dim < 1:
        raise ValueError(f"the embedding dimension must be at least 1, got {dim}")
    matrix = rng.standard_normal((dim, 2))
    projected = points2d @ matrix.T
    embedded = np.maximum(projected, 0.0)
    restored = embedded @ np.linalg.pinv(matrix).T
    # Zeroing the inactive rows leaves the rank of the active ones; matrix_rank takes the whole stack at once.
    active_rows = matrix[None, :, :] * (projected > 0)[:, :, None]
    recoverable = np.linalg.matrix_rank(active_rows) == 2
    for array in (matrix, embedded, restored, recoverable):
        array.setflags(write=False)
    return ReluRoundTrip(dim, matrix, embedded, restored, recoverable)


def _rng(seed: int, dim: int) -> np.random.Generator:
    # One stream per (seed, dim): a panel's T does not depend on which other dimensions are drawn.
    return np.random.default_rng([seed, dim])


def recoverable_share(
    dims: Sequence[int] = DIMENSIONS, seeds: int = 20, points: int = SPIRAL_POINTS
) -> dict[int, float]:
    """The mean share of recoverable spiral points per embedding dimension, over seeds ``0 .. seeds - 1``."""
    if seeds < 1:
        raise ValueError(f"need at least one seed, got {seeds}")
    curve = spiral(points)
    return {
        dim: float(np.mean([relu_round_trip(curve, dim, _rng(seed, dim)).share for seed in range(seeds)]))
        for dim in dims
    }


def plot_manifold(path: str | Path, dims: Sequence[int] = DIMENSIONS, seed: int = 0) -> dict[int, float]:
    """Draw Figure 1 (the input spiral, then its ReLU round trip for each of ``dims``) as one PNG at ``path``.

    Colour runs along the spiral, so points that collapse into each other show as colours meeting. Returns
    the share of recoverable points for each dimension, for this seed (``recoverable_share(dims, seeds=1)``
    when ``seed`` is 0).
    """
    from mobilenet.utils.plotting import pyplot, save_figure

    curve = spiral()
    along = np.linspace(0.0, 1.0, len(curve))
    trips = [relu_round_trip(curve, dim, _rng(seed, dim)) for dim in dims]

    plt = pyplot()
    fig, axes = plt.subplots(1, len(trips) + 1, figsize=(3.0 * (len(trips) + 1), 3.4))
    panels = [("Input", curve)] + [(f"n = {trip.dim}\nrecoverable {trip.share:.0%}", trip.restored) for trip in trips]
    for axis, (title, xy) in zip(axes, panels, strict=True):
        axis.scatter(xy[:, 0], xy[:, 1], c=along, cmap="viridis", s=4, linewidths=0)
        axis.set_title(title, fontsize=10)
        axis.set_aspect("equal", adjustable="datalim")
        axis.set_xticks([])
        axis.set_yticks([])
    fig.suptitle("ReLU(T x) projected back with pinv(T) (MobileNetV2, Figure 1)", fontsize=11)
    fig.tight_layout()
    save_figure(fig, path)
    return {trip.dim: trip.share for trip in trips}
