# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Which image to label next: representative, diverse and uncertain picks from image embeddings.

The selection logic of the MONAI Label strategies ``diverse_uncertainty`` and ``foreground_random``
(:mod:`condseg_monai.apps.monailabel.lib.strategy`), importable without MONAI Label so that
``bench/active_learning.py`` measures the very code the server runs.

``diverse_uncertainty`` follows TypiClust (Hacohen et al., ICML 2022: label the *typical* member of a k-means
cluster that no labeled image represents yet, which beat uncertainty sampling at small budgets) and adds the
model's uncertainty once there is a model, as "uncertainty within clusters" strategies do:

1. the images (labeled, recently served and unlabeled) are clustered by k-means on their embeddings
   (:func:`kmeans`; :func:`condseg_monai.metrics.encoder_embeddings`: ConDSeg's own encoder, nothing downloaded),
   into one cluster more than there are covered images (labeled or served), at most ``max_clusters``;
2. each cluster with unlabeled candidates gets the priority ``size / (covered + 1)`` (its share of the datastore
   per image already covering it: an uncovered cluster first, a large one before a small one, and a cluster keeps
   getting picks in proportion to its size once every cluster is covered, so the polyp-free frames of a real
   datastore are neither over-sampled nor ignored), times ``(1 - w) + w * u`` where ``u`` is the mean
   uncertainty percentile of its candidates (``w = uncertainty_weight``);
3. within the chosen cluster the candidate with the best ``(1 - w) * typicality percentile + w * uncertainty
   percentile`` is picked (:func:`typicality`: inverse mean distance to the nearest neighbours, TypiClust's
   measure: a typical image, not an outlier).

Calling :func:`select_next` again with the pick marked as covered gives the next pick, so a batch is diverse
(:func:`select_batch`); the MONAI Label strategy counts the images it served recently as covered for the same reason.
Everything is deterministic (seeded k-means++ initialisation, float64, ties to the smaller index).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

__all__ = [
    "DEFAULT_MAX_CLUSTERS",
    "DEFAULT_UNCERTAINTY_WEIGHT",
    "foreground_candidates",
    "kmeans",
    "percentile_ranks",
    "select_batch",
    "select_next",
    "typicality",
]

# the defaults of the ``diverse_uncertainty`` strategy (``--conf diversity_max_clusters`` /
# ``diversity_uncertainty_weight``), also what bench/active_learning.py's ``diverse`` arm runs
DEFAULT_MAX_CLUSTERS = 50
DEFAULT_UNCERTAINTY_WEIGHT = 0.5
# rows per block of the typicality distances (memory ~ _ROWS x cluster size x 8 bytes)
_ROWS = 1024


def kmeans(
    x: torch.Tensor, num_clusters: int, iterations: int = 50, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means with k-means++ initialisation, in float64.

    Args:
        x: ``(N, D)`` points.
        num_clusters: ``K``, ``1 <= K <= N``.
        iterations: at most this many assignment/update rounds (stops when the assignment no longer changes).
        seed: seed of the k-means++ draws (the same input and seed give the same clusters).

    Returns:
        ``(centroids (K, D) float64, assignment (N,) int64)``. A cluster that loses all its points keeps its
        centroid (it may be empty).

    Raises:
        ValueError: ``x`` is not 2-D, or ``num_clusters`` is outside ``[1, N]``.
    """
    if x.ndim != 2:
        raise ValueError(f"x must be (N, D), got shape {tuple(x.shape)}.")
    n = x.shape[0]
    if not 1 <= num_clusters <= n:
        raise ValueError(f"num_clusters must be in [1, {n}], got {num_clusters}.")
    x = x.detach().to("cpu", torch.float64)
    generator = torch.Generator().manual_seed(seed)
    centroids = [x[int(torch.randint(n, (1,), generator=generator))]]
    nearest = ((x - centroids[0]) ** 2).sum(dim=1)
    for _ in range(1, num_clusters):
        total = nearest.sum()
        if total <= 0:  # fewer distinct points than clusters: any point will do
            idx = int(torch.randint(n, (1,), generator=generator))
        else:
            idx = int(torch.multinomial(nearest / total, 1, generator=generator))
        centroids.append(x[idx])
        nearest = torch.minimum(nearest, ((x - x[idx]) ** 2).sum(dim=1))
    c = torch.stack(centroids)
    assignment = torch.cdist(x, c).argmin(dim=1)
    for _ in range(iterations):
        for k in range(num_clusters):
            members = assignment == k
            if members.any():
                c[k] = x[members].mean(dim=0)
        new = torch.cdist(x, c).argmin(dim=1)
        if torch.equal(new, assignment):
            break
        assignment = new
    return c, assignment


def typicality(x: torch.Tensor, neighbours: int = 20) -> torch.Tensor:
    """TypiClust's typicality: the inverse of the mean Euclidean distance to the ``neighbours`` nearest other points.

    Args:
        x: ``(M, D)`` points (one cluster).
        neighbours: how many nearest neighbours (at most ``M - 1`` are used).

    Returns:
        ``(M,)`` float64, higher = more typical; all ones when ``M == 1``. Distances are floored at 1e-12 (a point
        with duplicates is maximally typical, not infinite).
    """
    x = x.detach().to("cpu", torch.float64)
    m = x.shape[0]
    if m == 1:
        return torch.ones(1, dtype=torch.float64)
    k = min(int(neighbours), m - 1)
    mean_distance = torch.empty(m, dtype=torch.float64)
    for start in range(0, m, _ROWS):  # row blocks: a datastore-sized cluster never needs an (M, M) matrix
        d = torch.cdist(x[start : start + _ROWS], x)
        rows = torch.arange(d.shape[0])
        d[rows, rows + start] = float("inf")  # not its own neighbour
        mean_distance[start : start + d.shape[0]] = d.topk(k, dim=1, largest=False).values.mean(dim=1)
    return 1.0 / mean_distance.clamp_min(1e-12)


def percentile_ranks(values: torch.Tensor) -> torch.Tensor:
    """Each value's rank as a fraction in ``(0, 1]`` (the largest is 1); ties share their average rank; NaN -> 0.5.

    Scale-free, so a typicality and an uncertainty score can be combined whatever their units.

    Args:
        values: ``(M,)``.

    Returns:
        ``(M,)`` float64.
    """
    v = values.detach().to("cpu", torch.float64)
    out = torch.full_like(v, 0.5)
    finite = torch.isfinite(v)
    f = v[finite]
    if f.numel():
        less = (f[None, :] < f[:, None]).sum(dim=1).double()
        equal = (f[None, :] == f[:, None]).sum(dim=1).double()
        out[finite] = (less + (equal + 1) / 2) / f.numel()
    return out


def select_next(
    embeddings: torch.Tensor,
    candidates: torch.Tensor,
    covered: torch.Tensor,
    uncertainty: torch.Tensor | None = None,
    max_clusters: int = DEFAULT_MAX_CLUSTERS,
    uncertainty_weight: float = DEFAULT_UNCERTAINTY_WEIGHT,
    neighbours: int = 20,
    seed: int = 0,
) -> int:
    """The index of the next image to label (the steps in the module docstring).

    Args:
        embeddings: ``(N, D)`` one embedding per image (candidates, covered and any other image of the datastore).
        candidates: ``(N,)`` bool, the images that may be picked (unlabeled, not recently served).
        covered: ``(N,)`` bool, the images that already represent their cluster (labeled or recently served).
        uncertainty: optional ``(N,)`` uncertainty scores (higher = more uncertain; NaN = not scored); ``None``:
            pure representativeness (TypiClust).
        max_clusters: cap on the number of k-means clusters.
        uncertainty_weight: ``w`` in ``[0, 1]``; 0 ignores the uncertainty, 1 ignores typicality and cluster size
            beyond coverage.
        neighbours: typicality neighbours.
        seed: k-means seed.

    Returns:
        an index ``i`` with ``candidates[i]`` true.

    Raises:
        ValueError: no candidate, mismatched lengths, or a weight outside ``[0, 1]``.
    """
    n = embeddings.shape[0]
    candidates = torch.as_tensor(candidates, dtype=torch.bool).cpu()
    covered = torch.as_tensor(covered, dtype=torch.bool).cpu()
    if candidates.shape != (n,) or covered.shape != (n,):
        shapes = f"{tuple(candidates.shape)}, {tuple(covered.shape)}"
        raise ValueError(f"candidates and covered must be ({n},), got {shapes}.")
    if not candidates.any():
        raise ValueError("no candidate image to select.")
    if not 0.0 <= uncertainty_weight <= 1.0:
        raise ValueError(f"uncertainty_weight must be in [0, 1], got {uncertainty_weight}.")
    w = float(uncertainty_weight) if uncertainty is not None else 0.0
    u = torch.full((n,), 0.5, dtype=torch.float64)
    if uncertainty is not None:
        if uncertainty.shape != (n,):
            raise ValueError(f"uncertainty must be ({n},), got {tuple(uncertainty.shape)}.")
        u[candidates] = percentile_ranks(uncertainty[candidates])

    k = max(1, min(int(covered.sum()) + 1, int(max_clusters), n))
    _, assignment = kmeans(embeddings, k, seed=seed)
    best_cluster, best_priority = -1, -1.0
    for c in range(k):
        members = assignment == c
        cand = members & candidates
        if not cand.any():
            continue
        priority = float(members.sum()) / (float((members & covered).sum()) + 1.0)
        priority *= (1.0 - w) + w * float(u[cand].mean())
        if priority > best_priority:
            best_cluster, best_priority = c, priority

    members = (assignment == best_cluster).nonzero().flatten()
    typ = typicality(embeddings[members], neighbours)
    is_cand = candidates[members]
    cand_idx = members[is_cand]
    combined = (1.0 - w) * percentile_ranks(typ[is_cand]) + w * u[cand_idx]
    best = combined.max()
    return int(cand_idx[(combined == best).nonzero().flatten()[0]])


def select_batch(
    embeddings: torch.Tensor,
    candidates: torch.Tensor,
    covered: torch.Tensor,
    count: int,
    uncertainty: torch.Tensor | None = None,
    **kwargs: float | int,
) -> list[int]:
    """``count`` picks of :func:`select_next`, each marked covered (and no longer a candidate) before the next.

    Args:
        embeddings, candidates, covered, uncertainty: as :func:`select_next`.
        count: how many images.
        kwargs: the other arguments of :func:`select_next`.

    Returns:
        ``count`` distinct indices in pick order.

    Raises:
        ValueError: fewer than ``count`` candidates.
    """
    candidates = torch.as_tensor(candidates, dtype=torch.bool).clone()
    covered = torch.as_tensor(covered, dtype=torch.bool).clone()
    if int(candidates.sum()) < count:
        raise ValueError(f"only {int(candidates.sum())} candidates, {count} requested.")
    picks = []
    for _ in range(count):
        i = select_next(embeddings, candidates, covered, uncertainty, **kwargs)
        picks.append(i)
        candidates[i] = False
        covered[i] = True
    return picks


def foreground_candidates(polyp_present: Mapping[str, bool | None], ids: Sequence[str]) -> list[str]:
    """The ``ids`` the model finds a polyp in (``polyp_present[id]`` true), or all ``ids`` when it finds none.

    The candidates of "foreground-aware random" (random among images likely to contain foreground, the baseline
    no method reliably beat in nnActive); an image without a decision (not scored yet) is not a candidate unless
    no image is.
    """
    found = [i for i in ids if polyp_present.get(i) is True]
    return found if found else list(ids)
