# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of NegativeBatchSampler and make_train_dataloader (``negatives_per_batch``)."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from monai.data import Dataset

from condseg_monai.data import NegativeBatchSampler, make_train_dataloader, negative_flags

# 9 positives and 5 negatives (the odd indices from 5), interleaved on purpose
FLAGS = [i % 2 == 1 and i > 3 for i in range(14)]
POSITIVES = [i for i, f in enumerate(FLAGS) if not f]
NEGATIVES = [i for i, f in enumerate(FLAGS) if f]


def test_fixture_has_both_kinds() -> None:
    assert len(POSITIVES) == 9 and NEGATIVES == [5, 7, 9, 11, 13]


@pytest.mark.parametrize(("batch_size", "k"), [(4, 1), (4, 3), (3, 2), (5, 0)])
def test_exactly_k_negatives_per_batch_and_every_positive_once(batch_size: int, k: int) -> None:
    sampler = NegativeBatchSampler(FLAGS, batch_size, k, seed=0)
    for _ in range(3):  # several epochs
        batches = list(sampler)
        assert len(batches) == len(sampler) == -(-len(POSITIVES) // (batch_size - k))
        for batch in batches:
            assert sum(FLAGS[i] for i in batch) == k
        sizes = [sum(not FLAGS[i] for i in b) for b in batches]
        assert sizes[:-1] == [batch_size - k] * (len(batches) - 1) and 0 < sizes[-1] <= batch_size - k
        seen = [i for b in batches for i in b if not FLAGS[i]]
        assert sorted(seen) == POSITIVES, "every positive exactly once per epoch"


def test_negatives_cycle_through_the_pool_across_epochs() -> None:
    """A small pool is reused: over 5 draws of each negative, every negative is drawn equally often."""
    sampler = NegativeBatchSampler(FLAGS, 4, 2, seed=3)  # 5 batches x 2 = 10 negatives per epoch
    drawn = [i for _ in range(5) for b in sampler for i in b if FLAGS[i]]
    assert len(drawn) == 50 and Counter(drawn) == dict.fromkeys(NEGATIVES, 10)
    # each round of the cycle is a permutation of the pool, and the rounds differ
    rounds = [drawn[i : i + 5] for i in range(0, 50, 5)]
    assert all(sorted(r) == NEGATIVES for r in rounds) and len({tuple(r) for r in rounds}) > 1


def test_deterministic_for_a_seed() -> None:
    def epochs(seed: int) -> list[list[list[int]]]:
        sampler = NegativeBatchSampler(FLAGS, 4, 1, seed=seed)
        return [list(sampler) for _ in range(3)]

    first = epochs(7)
    assert first == epochs(7)
    assert first != epochs(8)
    assert first[0] != first[1], "a new order every epoch"


def test_zero_leaves_negatives_out() -> None:
    batches = list(NegativeBatchSampler(FLAGS, 4, 0, seed=0))
    assert sorted(i for b in batches for i in b) == POSITIVES


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match=r"negatives_per_batch must be an integer in 0..batch_size-1 = 3, got 4"):
        NegativeBatchSampler(FLAGS, 4, 4)
    with pytest.raises(ValueError, match="negatives_per_batch must be"):
        NegativeBatchSampler(FLAGS, 4, -1)
    with pytest.raises(ValueError, match="negatives_per_batch = 1, but the training data has no declared negative"):
        NegativeBatchSampler([False] * 5, 4, 1)
    with pytest.raises(ValueError, match="negatives_per_batch: the training data has no positive"):
        NegativeBatchSampler([True] * 5, 4, 1)
    NegativeBatchSampler([False] * 5, 4, 0)  # no negatives needed for 0


def _dataset() -> Dataset:
    data = [{"x": torch.tensor(float(i)), **({"negative": True} if f else {})} for i, f in enumerate(FLAGS)]
    return Dataset(data)


def test_make_train_dataloader() -> None:
    assert negative_flags(_dataset().data) == FLAGS
    plain = make_train_dataloader(_dataset(), batch_size=4, shuffle=False, negatives_per_batch=None)
    assert plain.batch_size == 4 and len(plain) == 4  # 14 items, as a plain DataLoader
    assert next(iter(plain))["x"].tolist() == [0.0, 1.0, 2.0, 3.0]
    loader = make_train_dataloader(_dataset(), batch_size=4, negatives_per_batch=1, seed=0)
    assert isinstance(loader.batch_sampler, NegativeBatchSampler) and len(loader) == 3
    batches = [b["x"].long().tolist() for b in loader]
    assert [sum(FLAGS[i] for i in b) for b in batches] == [1, 1, 1]
    assert batches == list(NegativeBatchSampler(FLAGS, 4, 1, seed=0))


def test_make_train_dataloader_refuses_distributed_training() -> None:
    sampler = torch.utils.data.SequentialSampler(range(len(FLAGS)))  # what multi_gpu_train.json passes, in kind
    with pytest.raises(NotImplementedError, match="negatives_per_batch = 1: .*not implemented for distributed"):
        make_train_dataloader(_dataset(), batch_size=4, shuffle=False, sampler=sampler, negatives_per_batch=1)
    loader = make_train_dataloader(_dataset(), batch_size=4, shuffle=False, sampler=sampler)  # null: unchanged
    assert loader.sampler is sampler
    with pytest.raises(TypeError, match="needs a dataset with a 'data' list"):
        make_train_dataloader(torch.utils.data.TensorDataset(torch.zeros(4)), batch_size=2, negatives_per_batch=0)
