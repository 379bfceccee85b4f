# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Fidelity: our networks on RGB equal an independent reference of the official models on BGR.

The reference (``official_reference.py``) is written from the official design with the official module names and a
literal unfold/fold CDFA; its weights go through :func:`convert_official_state_dict`, exactly like a real official
checkpoint would. Full width (the official configuration) at 64x64, batch 2: a few seconds on CPU.

Two criteria, neither a constant that happened to hold on one machine:

* float64: the two implementations are the same function up to rounding (~1e-13), checked at 1e-9.
* float32: the error of our float32 output against the float64 reference may be at most a small multiple of the
  reference's *own* float32 error on the same CPU. Convolution round-off depends on the instruction set (AVX2 and
  AVX-512 sum in different orders), so the yardstick is measured on the machine that runs the test; a real
  mismatch (wrong channel order, a missing BatchNorm buffer, a wrong weight mapping) moves the output by orders of
  magnitude more, which the test checks too.
"""

from __future__ import annotations

import copy

import pytest
import torch
from network_test_utils import parse_official_keys, randomize_batchnorm
from official_reference import OfficialConDSeg, OfficialConDSegStage1

from condseg_monai.networks import ConDSeg, ConDSegStage1, convert_official_state_dict


@pytest.mark.parametrize("cls, section", [(OfficialConDSeg, "ConDSeg"), (OfficialConDSegStage1, "ConDSegStage1")])
def test_reference_keys_equal_official_keys_file(cls, section):
    with torch.device("meta"):
        ref = cls()
    assert [(k, tuple(v.shape)) for k, v in ref.state_dict().items()] == parse_official_keys()[section]


# Our float32 error may exceed the reference's own float32 error by this factor: two float32 implementations of
# one function sum in different orders, so their errors differ by small factors, not by orders of magnitude.
_ROUNDING_FACTOR = 4.0
# Floor of the yardstick (a few float32 ulps of a probability), for outputs the reference happens to get exact.
_EPS32 = 16 * torch.finfo(torch.float32).eps


def assert_float32_rounding_close(ours: torch.Tensor, ref32: torch.Tensor, ref64: torch.Tensor) -> float:
    """Check ``ours`` (float32) against the float64 reference within the reference's own float32 round-off.

    Both the greatest and the mean absolute error are compared, each against the same statistic of
    ``|ref32 - ref64|``, so one element that happens to round unluckily on this CPU does not decide the test.

    Returns:
        the tolerance used for the greatest error (to check that a real mismatch exceeds it).
    """
    ours, ref32, ref64 = ours.double(), ref32.double(), ref64.double()
    ref_err, our_err = (ref32 - ref64).abs(), (ours - ref64).abs()
    max_tol = _ROUNDING_FACTOR * float(ref_err.max()) + _EPS32
    mean_tol = _ROUNDING_FACTOR * float(ref_err.mean()) + _EPS32
    assert float(our_err.max()) <= max_tol, f"max error {float(our_err.max()):.3e} > {max_tol:.3e}"
    assert float(our_err.mean()) <= mean_tol, f"mean error {float(our_err.mean()):.3e} > {mean_tol:.3e}"
    return max_tol


def _tame_output_convs(convs: list[torch.nn.Conv2d]) -> None:
    """Shrink the random final 1x1 convolutions so the maps are not saturated at 0 or 1 (a meaningful comparison)."""
    with torch.no_grad():
        for conv in convs:
            conv.weight.mul_(0.1)
            if conv.bias is not None:
                conv.bias.zero_()


@pytest.mark.slow
def test_condseg_rgb_equals_official_bgr():
    torch.manual_seed(0)
    rgb = torch.rand(2, 3, 64, 64)
    ref = OfficialConDSeg()
    randomize_batchnorm(ref, calibrate_with=torch.rand(2, 3, 64, 64).flip(1))
    aux = ref.aux_head
    _tame_output_convs([ref.output_block.c3, aux.branch_fg[9], aux.branch_bg[9], aux.branch_uc[9]])
    ours = ConDSeg(return_aux=True).eval()
    ours.load_state_dict(convert_official_state_dict(ref.state_dict()), strict=True)

    with torch.no_grad():
        expected = ref(rgb.flip(1))  # official input: BGR
        probs = torch.sigmoid(ours(rgb))  # ours: RGB, logits
        ours.return_aux = False
        mask = torch.sigmoid(ours(rgb))
        wrong_channels = ref(rgb)[0]  # feeding RGB to the reference gives something else
    ref64 = copy.deepcopy(ref).double()
    with torch.no_grad():
        expected64 = ref64(rgb.double().flip(1))

    # float32: within the reference's own float32 round-off on this CPU
    for index in (ConDSeg.MASK, ConDSeg.FOREGROUND, ConDSeg.BACKGROUND, ConDSeg.UNCERTAINTY):
        assert expected[index].std() > 1e-2  # the comparison is not between near-constant maps
        tol = assert_float32_rounding_close(probs[:, index], expected[index], expected64[index])
        assert tol < 1e-2, "the reference's float32 error is too large for the comparison to mean anything"
    tol = assert_float32_rounding_close(mask, expected[ConDSeg.MASK], expected64[ConDSeg.MASK])
    # the channel order matters far beyond round-off: the criterion can catch a real mismatch
    assert float((wrong_channels - expected[0]).abs().max()) > 100 * tol

    # float64: the two implementations are the same function up to rounding (measured ~1e-13)
    ours.double().return_aux = True
    with torch.no_grad():
        probs64 = torch.sigmoid(ours(rgb.double()))
    for index in range(4):
        torch.testing.assert_close(probs64[:, index], expected64[index], atol=1e-9, rtol=0)


def test_stage1_rgb_equals_official_bgr():
    torch.manual_seed(0)
    rgb = torch.rand(2, 3, 64, 64)
    ref = OfficialConDSegStage1()
    randomize_batchnorm(ref, calibrate_with=torch.rand(2, 3, 64, 64).flip(1))
    ours = ConDSegStage1().eval()
    ours.load_state_dict(convert_official_state_dict(ref.state_dict()), strict=True)
    with torch.no_grad():
        expected = ref(rgb.flip(1))
        probs = torch.sigmoid(ours(rgb))
    ref.double()
    ours.double()
    with torch.no_grad():
        expected64 = ref(rgb.double().flip(1))
        probs64 = torch.sigmoid(ours(rgb.double()))
    assert expected.std() > 1e-2
    assert_float32_rounding_close(probs, expected, expected64)
    torch.testing.assert_close(probs64, expected64, atol=1e-9, rtol=0)
