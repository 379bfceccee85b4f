# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Training batches with a fixed number of declared negatives (images without foreground) per batch.

:class:`NegativeBatchSampler` makes every batch hold exactly ``k`` declared negatives and up to
``batch_size - k`` positives: the positives are shuffled once per epoch and each is seen once (they define the
epoch), the negatives are drawn from a shuffled cycle that continues across epochs, so a small pool of negatives
is reused and every negative is drawn equally often. :func:`make_train_dataloader` is what
``bundle/configs/train.json`` builds ``train#dataloader`` with (setting ``negatives_per_batch``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from monai.data import DataLoader
from torch.utils.data import Dataset, Sampler

__all__ = ["NegativeBatchSampler", "make_train_dataloader", "negative_flags"]


def negative_flags(data: Sequence[Mapping[str, Any]], negative_key: str = "negative") -> list[bool]:
    """Which items of a datalist split are declared negatives.

    Args:
        data: data dicts, e.g. :func:`condseg_monai.data.load_datalist` of a split.
        negative_key: key of the declared-negative flag (absent: not a negative).

    Returns:
        one ``bool`` per item.
    """
    return [bool(item.get(negative_key, False)) for item in data]


class NegativeBatchSampler(Sampler[list[int]]):
    """Batch sampler: exactly ``negatives_per_batch`` declared negatives in every batch, positives for the rest.

    An epoch is one pass over the positives in a fresh random order, ``ceil(P / (batch_size - k))`` batches for
    ``P`` positives and ``k = negatives_per_batch``; each batch holds ``batch_size - k`` positives (the last one
    may hold fewer) followed by ``k`` negatives. The negatives come from a cycle over the negative pool,
    reshuffled each time it is used up, that continues across epochs; a pool smaller than the negatives an epoch
    needs is therefore reused (and the same negative may appear twice in a batch where the cycle restarts).
    ``k = 0`` leaves the negatives out. All draws come from one ``torch.Generator`` seeded with ``seed``: two
    samplers with the same arguments give the same batches, epoch after epoch.

    Args:
        negative: per dataset item, whether it is a declared negative (:func:`negative_flags`).
        batch_size: items per batch.
        negatives_per_batch: negatives per batch, ``0 <= k < batch_size``.
        seed: seed of the draws; ``None`` draws one from torch's global generator.

    Raises:
        ValueError: ``batch_size`` < 1, ``k`` out of range, no positive item, or ``k > 0`` without any negative
            item (each message names ``negatives_per_batch``).
    """

    def __init__(
        self, negative: Sequence[bool], batch_size: int, negatives_per_batch: int, seed: int | None = 0
    ) -> None:
        k = negatives_per_batch
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < batch_size:
            raise ValueError(
                f"negatives_per_batch must be an integer in 0..batch_size-1 = {batch_size - 1}, got {k!r}."
            )
        self.positives = [i for i, neg in enumerate(negative) if not neg]
        self.negatives = [i for i, neg in enumerate(negative) if neg]
        if not self.positives:
            raise ValueError(
                "negatives_per_batch: the training data has no positive item (an epoch is one pass over them)."
            )
        if k > 0 and not self.negatives:
            raise ValueError(
                f'negatives_per_batch = {k}, but the training data has no declared negative ("negative": true entries).'
            )
        self.batch_size = batch_size
        self.negatives_per_batch = k
        if seed is None:
            seed = int(torch.randint(0, 2**62, (), dtype=torch.int64).item())
        self.generator = torch.Generator().manual_seed(int(seed))
        self._cycle: list[int] = []
        self._position = 0

    def __len__(self) -> int:
        return math.ceil(len(self.positives) / (self.batch_size - self.negatives_per_batch))

    def _draw_negatives(self, n: int) -> list[int]:
        out: list[int] = []
        while len(out) < n:
            if self._position >= len(self._cycle):  # pool used up: a new shuffled round
                order = torch.randperm(len(self.negatives), generator=self.generator).tolist()
                self._cycle, self._position = [self.negatives[i] for i in order], 0
            take = min(n - len(out), len(self._cycle) - self._position)
            out += self._cycle[self._position : self._position + take]
            self._position += take
        return out

    def __iter__(self) -> Iterator[list[int]]:
        per_batch = self.batch_size - self.negatives_per_batch
        order = torch.randperm(len(self.positives), generator=self.generator).tolist()
        positives = [self.positives[i] for i in order]
        for start in range(0, len(positives), per_batch):
            yield positives[start : start + per_batch] + self._draw_negatives(self.negatives_per_batch)


def make_train_dataloader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = True,
    num_workers: int = 0,
    negatives_per_batch: int | None = None,
    seed: int | None = 0,
    sampler: Sampler | None = None,
    negative_key: str = "negative",
    **kwargs: Any,
) -> DataLoader:
    """The training ``DataLoader`` (MONAI's), with ``negatives_per_batch`` declared negatives in every batch.

    Args:
        dataset: the training dataset; for ``negatives_per_batch`` not ``None`` a MONAI ``Dataset`` whose
            ``data`` are the datalist's data dicts (declared negatives carry ``negative_key``: true).
        batch_size: items per batch.
        shuffle: shuffle (``negatives_per_batch`` ``None`` only; the batch sampler always shuffles).
        num_workers: loader worker processes.
        negatives_per_batch: ``None``: a plain loader, negatives shuffled in with the other images (their
            natural share); ``k >= 0``: :class:`NegativeBatchSampler` with ``k`` negatives per batch (``0``: the
            negatives are left out).
        seed: seed of :class:`NegativeBatchSampler` (the run's ``seed``; ``None``: unseeded).
        sampler: a sampler for the plain loader (the multi-GPU overlay passes a ``DistributedSampler``).
        negative_key: key of the declared-negative flag in the data dicts.
        kwargs: more ``DataLoader`` arguments.

    Returns:
        the ``DataLoader``.

    Raises:
        NotImplementedError: ``negatives_per_batch`` not ``None`` under distributed training (``torch.distributed``
            initialised, or a ``sampler`` given).
        TypeError: ``negatives_per_batch`` not ``None`` and ``dataset`` has no ``data`` list.
        ValueError: see :class:`NegativeBatchSampler`.
    """
    if negatives_per_batch is None:
        return DataLoader(
            dataset, batch_size=batch_size, shuffle=shuffle, sampler=sampler, num_workers=num_workers, **kwargs
        )
    if sampler is not None or (dist.is_available() and dist.is_initialized()):
        raise NotImplementedError(
            f"negatives_per_batch = {negatives_per_batch}: a fixed number of negatives per batch is not implemented "
            "for distributed (multi-GPU) training; set negatives_per_batch to null (negatives are then shuffled "
            "in with the other training images)."
        )
    data = getattr(dataset, "data", None)
    if not isinstance(data, Sequence):
        raise TypeError(
            f"negatives_per_batch needs a dataset with a 'data' list of data dicts, got {type(dataset).__name__}."
        )
    batch_sampler = NegativeBatchSampler(negative_flags(data, negative_key), batch_size, negatives_per_batch, seed)
    return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=num_workers, **kwargs)
