# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The selection logic of the ``diverse_uncertainty`` and ``foreground_random`` strategies, on synthetic
embeddings (runs without MONAI Label)."""

from __future__ import annotations

import pytest
import torch

from condseg_monai.apps.monailabel import selection
from condseg_monai.apps.monailabel.selection import (
    foreground_candidates,
    kmeans,
    percentile_ranks,
    select_batch,
    select_next,
    typicality,
)


def blobs(sizes: list[int], spread: float = 0.05, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Well-separated Gaussian clusters in 8-D, centres 10 apart: ``(points (N, 8), cluster id (N,))``."""
    g = torch.Generator().manual_seed(seed)
    points, ids = [], []
    for c, n in enumerate(sizes):
        centre = torch.zeros(8, dtype=torch.float64)
        centre[c % 8] = 10.0 * (1 + c // 8)
        points.append(centre + spread * torch.randn(n, 8, generator=g, dtype=torch.float64))
        ids += [c] * n
    return torch.cat(points), torch.tensor(ids)


def test_kmeans_recovers_separated_clusters_and_is_deterministic() -> None:
    x, truth = blobs([30, 20, 10])
    _, a = kmeans(x, 3, seed=1)
    # the same partition up to the cluster numbering
    for c in range(3):
        assert a[truth == c].unique().numel() == 1
    assert a.unique().numel() == 3
    assert torch.equal(kmeans(x, 3, seed=1)[1], a)


def test_kmeans_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_clusters"):
        kmeans(torch.zeros(3, 2), 4)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        kmeans(torch.zeros(3), 1)


def test_typicality_is_the_inverse_mean_neighbour_distance() -> None:
    x = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    # 1 nearest neighbour: distances 1, 1, 2
    assert torch.equal(typicality(x, neighbours=1), torch.tensor([1.0, 1.0, 0.5], dtype=torch.float64))
    # 2 neighbours (all others): means (1+3)/2, (1+2)/2, (3+2)/2
    expected = 1 / torch.tensor([2.0, 1.5, 2.5], dtype=torch.float64)
    assert torch.equal(typicality(x, neighbours=5), expected)
    assert torch.equal(typicality(x[:1]), torch.ones(1, dtype=torch.float64))


def test_typicality_in_row_blocks_equals_the_full_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    x, _ = blobs([7, 6])
    full = typicality(x, neighbours=3)
    monkeypatch.setattr(selection, "_ROWS", 4)  # 13 points in blocks of 4, 4, 4, 1
    assert torch.equal(typicality(x, neighbours=3), full)


def test_percentile_ranks_ties_and_nan() -> None:
    r = percentile_ranks(torch.tensor([3.0, 1.0, 3.0, float("nan"), 2.0]))
    assert r.tolist() == [(2 + 1.5) / 4, 1 / 4, (2 + 1.5) / 4, 0.5, 2 / 4]


def test_cold_start_picks_the_typical_member_of_the_largest_cluster() -> None:
    x, truth = blobs([40, 15, 5])
    x[3] = x[truth == 0].mean(dim=0)  # the centre of the big cluster: its most typical member
    none = torch.zeros(len(x), dtype=torch.bool)
    pick = select_next(x, ~none, none, seed=0)
    assert pick == 3


def test_a_batch_is_spread_over_the_clusters_in_proportion_to_their_size() -> None:
    x, truth = blobs([45, 20])
    none = torch.zeros(len(x), dtype=torch.bool)
    picks = select_batch(x, ~none, none, 6, max_clusters=2, seed=0)
    assert len(set(picks)) == 6
    # priorities size / (covered + 1): 45 > 20 -> 0; 22.5 > 20 -> 0; 15 < 20 -> 1; 15 > 10 -> 0; 11.25 > 10 -> 0;
    # 9 < 10 -> 1: four and two, the clusters' 45 : 20
    assert truth[picks].tolist() == [0, 0, 1, 0, 0, 1]


def test_an_uncovered_cluster_comes_before_a_covered_one_of_the_same_size() -> None:
    x, truth = blobs([20, 20, 20])
    covered = torch.zeros(len(x), dtype=torch.bool)
    covered[[0, 20]] = True  # clusters 0 and 1 have a labeled image each: k = 3
    pick = select_next(x, ~covered, covered, seed=0)
    assert truth[pick] == 2


def test_uncertainty_moves_the_pick_within_and_between_clusters() -> None:
    x, truth = blobs([20, 20])
    none = torch.zeros(len(x), dtype=torch.bool)
    u = torch.zeros(len(x), dtype=torch.float64)
    u[25] = 1.0  # one very uncertain image in cluster 1
    covered = none.clone()
    covered[0] = True  # cluster 0 covered once: two clusters
    cand = ~covered
    assert truth[select_next(x, cand, covered, u, uncertainty_weight=0.0, seed=0)] == 1  # coverage alone
    # full weight on uncertainty: within cluster 1 the uncertain image wins over the typical ones
    assert select_next(x, cand, covered, u, uncertainty_weight=1.0, seed=0) == 25
    # a NaN (unscored) candidate counts as the median, never as the most uncertain
    u_nan = u.clone()
    u_nan[30] = float("nan")
    assert select_next(x, cand, covered, u_nan, uncertainty_weight=1.0, seed=0) == 25


def test_select_next_validates() -> None:
    x, _ = blobs([3])
    none = torch.zeros(3, dtype=torch.bool)
    with pytest.raises(ValueError, match="no candidate"):
        select_next(x, none, none)
    with pytest.raises(ValueError, match="uncertainty_weight"):
        select_next(x, ~none, none, torch.zeros(3), uncertainty_weight=1.5)
    with pytest.raises(ValueError, match="must be"):
        select_next(x, torch.ones(2, dtype=torch.bool), none)
    with pytest.raises(ValueError, match="requested"):
        select_batch(x, ~none, none, 4)


def test_foreground_candidates() -> None:
    assert foreground_candidates({"a": True, "b": False, "c": None, "d": True}, ["a", "b", "c", "d"]) == ["a", "d"]
    assert foreground_candidates({"a": False}, ["a", "b"]) == ["a", "b"], "no predicted polyp: everyone"
