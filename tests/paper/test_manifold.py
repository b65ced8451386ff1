"""Figure 1 of MobileNetV2: ReLU collapses a 2-D spiral embedded in few dimensions, not in many."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mobilenet.paper.manifold import DIMENSIONS, plot_manifold, recoverable_share, relu_round_trip, spiral

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_spiral_has_the_requested_shape_and_avoids_the_origin() -> None:
    curve = spiral(points=300, turns=2.0)
    assert curve.shape == (300, 2)
    # At the origin every row of T is inactive whatever T is: such a point would say nothing about n.
    assert np.linalg.norm(curve, axis=1).min() > 0.05
    with pytest.raises(ValueError, match="at least 2 points"):
        spiral(points=1)


def test_recoverable_share_rises_with_the_dimension_as_figure_1_claims() -> None:
    shares = recoverable_share(DIMENSIONS, seeds=20)
    assert list(shares) == list(DIMENSIONS)
    ordered = [shares[dim] for dim in DIMENSIONS]
    assert ordered == sorted(ordered), shares
    assert shares[2] < shares[3] < shares[5] < shares[15], shares
    # "n = 2, 3 result in information loss where certain points of the manifold collapse into each other"
    assert shares[2] < 0.6 and shares[3] < 0.6, shares
    # "for n = 15 to 30" the picture is bent but almost every point survives
    assert shares[15] > 0.99 and shares[30] > 0.99, shares


@pytest.mark.parametrize("dim", DIMENSIONS)
def test_recoverable_means_the_active_rows_give_the_point_back(dim: int) -> None:
    curve = spiral(points=200)
    trip = relu_round_trip(curve, dim, np.random.default_rng(11))
    matrix = trip.matrix
    assert matrix.shape == (dim, 2)
    np.testing.assert_array_equal(trip.embedded, np.maximum(curve @ matrix.T, 0.0))
    np.testing.assert_allclose(trip.restored, trip.embedded @ np.linalg.pinv(matrix).T, atol=1e-12)

    for point, embedded, recoverable in zip(curve, trip.embedded, trip.recoverable, strict=True):
        active = matrix @ point > 0
        rows = matrix[active]
        assert recoverable == (len(rows) > 0 and np.linalg.matrix_rank(rows) == 2)
        if recoverable:
            solved = np.linalg.lstsq(rows, embedded[active], rcond=None)[0]
            np.testing.assert_allclose(solved, point, atol=1e-9)
        elif len(rows) > 0:
            # One active row pins x only along that row: the least-norm solution misses the point.
            solved = np.linalg.lstsq(rows, embedded[active], rcond=None)[0]
            assert np.linalg.norm(solved - point) > 1e-6
        else:
            assert not embedded.any()  # nothing of the point is left


def test_the_round_trip_loses_information_at_n_2() -> None:
    curve = spiral()
    trip = relu_round_trip(curve, 2, np.random.default_rng(3))
    lost = ~trip.recoverable
    assert lost.any() and trip.recoverable.any()
    # With n = 2, pinv(T) is the inverse: the points with both rows active come back exactly ...
    np.testing.assert_allclose(trip.restored[trip.recoverable], curve[trip.recoverable], atol=1e-9)
    # ... and the others do not.
    errors = np.linalg.norm(trip.restored[lost] - curve[lost], axis=1)
    assert errors.min() > 1e-6
    # The points with no active row collapse into one: the origin.
    silent = ~(curve @ trip.matrix.T > 0).any(axis=1)
    assert silent.sum() > 1
    np.testing.assert_array_equal(trip.restored[silent], 0.0)


def test_the_same_seed_gives_the_same_result() -> None:
    curve = spiral(points=200)
    first = relu_round_trip(curve, 5, np.random.default_rng(7))
    again = relu_round_trip(curve, 5, np.random.default_rng(7))
    other = relu_round_trip(curve, 5, np.random.default_rng(8))
    for name in ("matrix", "embedded", "restored", "recoverable"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.matrix, other.matrix)
    assert not first.restored.flags.writeable
    assert recoverable_share(seeds=3, points=200) == recoverable_share(seeds=3, points=200)


def test_plot_writes_one_png_and_returns_the_shares_of_its_seed(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the figure needs matplotlib: pip install 'mobilenet[plots]'")
    folder = tmp_path / "figures"
    path = folder / "manifold.png"
    shares = plot_manifold(path, seed=0)
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert [entry.name for entry in folder.iterdir()] == ["manifold.png"]  # no temporary file left
    assert shares == recoverable_share(DIMENSIONS, seeds=1)
