# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The semi-supervised batch mixing: BidirectionalCopyPaste (labeled with unlabeled) and UnlabeledCutMix (unlabeled
images among themselves, their pseudo-label logits mixed by the same boxes)."""

from __future__ import annotations

import pytest
import torch

from condseg_monai.transforms import BidirectionalCopyPaste, UnlabeledCutMix


def _batch(n: int, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    # image i is the constant i, its logits the constant 10 + i: every output pixel says where it came from
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, size, size).clone()
    return images, images[:, :1] + 10.0


def test_every_pixel_keeps_the_pseudo_label_of_the_image_it_comes_from() -> None:
    images, logits = _batch(4)
    cutmix = UnlabeledCutMix(prob=1.0).set_random_state(0)
    mixed, mixed_logits = cutmix(images, logits)
    assert mixed.shape == images.shape and mixed_logits.shape == logits.shape
    torch.testing.assert_close(mixed_logits - 10.0, mixed[:, :1], rtol=0, atol=0)
    box = cutmix.masks(4, (16, 16))
    source = (torch.arange(4) + cutmix.shift) % 4
    assert 1 <= cutmix.shift < 4  # never pasted into itself
    expected = torch.where(box.bool(), source.view(4, 1, 1, 1).float(), torch.arange(4.0).view(4, 1, 1, 1))
    torch.testing.assert_close(mixed[:, :1], expected, rtol=0, atol=0)
    for top, left, h, w in cutmix.boxes:  # prob 1: one box per image, wholly inside, 2-40 % of the area up to rounding
        assert 0 <= top <= 16 - h and 0 <= left <= 16 - w
        assert 1 <= h * w <= 0.4 * 256 + (h + w) / 2 + 1


def test_box_area_and_aspect_follow_their_ranges() -> None:
    cutmix = UnlabeledCutMix(prob=1.0, area_range=(0.25, 0.25), aspect_range=(1.0, 1.0)).set_random_state(3)
    cutmix.randomize((5, (64, 64)))
    assert {box[2:] for box in cutmix.boxes} == {(32, 32)}  # a square of a quarter of the image


def test_no_mixing_without_a_partner_or_probability() -> None:
    images, logits = _batch(1)
    mixed, mixed_logits = UnlabeledCutMix(prob=1.0).set_random_state(0)(images, logits)
    assert torch.equal(mixed, images) and torch.equal(mixed_logits, logits)
    images, logits = _batch(3)
    mixed, mixed_logits = UnlabeledCutMix(prob=0.0).set_random_state(0)(images, logits)
    assert torch.equal(mixed, images) and torch.equal(mixed_logits, logits)


def test_reproducible_and_reusable_boxes() -> None:
    images, logits = _batch(3)
    first = UnlabeledCutMix().set_random_state(7)
    out = first(images, logits)
    second = UnlabeledCutMix().set_random_state(7)
    again = second(images, logits)
    assert first.boxes == second.boxes and torch.equal(out[0], again[0])
    reused = first(images, logits, randomize=False)
    assert torch.equal(reused[1], out[1])
    with pytest.raises(ValueError, match="randomize=False"):
        first(*_batch(2), randomize=False)


def test_bad_arguments_and_shapes() -> None:
    with pytest.raises(ValueError, match="prob"):
        UnlabeledCutMix(prob=1.5)
    with pytest.raises(ValueError, match="area_range"):
        UnlabeledCutMix(area_range=(0.0, 0.4))
    with pytest.raises(ValueError, match="aspect_range"):
        UnlabeledCutMix(aspect_range=(2.0, 1.0))
    images, logits = _batch(3)
    with pytest.raises(ValueError, match="same batch and spatial sizes"):
        UnlabeledCutMix()(images, logits[:2])


def test_bidirectional_copy_paste_mixing() -> None:
    labeled = torch.ones(1, 3, 6, 6)
    label = torch.ones(1, 1, 6, 6)
    unlabeled = torch.zeros(2, 3, 6, 6)
    bcp = BidirectionalCopyPaste(box_fraction=0.5).set_random_state(0)
    mixed, target, region = bcp(labeled, label, unlabeled)
    assert mixed.shape == (4, 3, 6, 6) and target.shape == (4, 1, 6, 6) and region.shape == (4, 1, 6, 6)
    box = bcp.boxes(2, (6, 6))
    assert box.sum(dim=(1, 2, 3)).tolist() == [9.0, 9.0]  # 3x3 boxes
    # inward: the labeled box pasted into the unlabeled image; outward: the unlabeled box into the labeled image
    torch.testing.assert_close(mixed[:2], box.expand(-1, 3, -1, -1))
    torch.testing.assert_close(mixed[2:], 1 - box.expand(-1, 3, -1, -1))
    # region = where the pixel comes from the labeled image; the ground truth is aligned with the mixed images
    torch.testing.assert_close(region, torch.cat([box, 1 - box]))
    torch.testing.assert_close(target, torch.ones(4, 1, 6, 6))
    # both unlabeled images are paired with the single labeled one, boxes are reproducible with the seed
    again = BidirectionalCopyPaste(box_fraction=0.5).set_random_state(0)
    again.randomize((2, (6, 6)))
    assert (again.corners == bcp.corners).all()
    with pytest.raises(ValueError, match="box_fraction"):
        BidirectionalCopyPaste(box_fraction=0.0)
