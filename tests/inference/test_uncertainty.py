# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The inferer of the bundle's uncertainty map (``condseg_monai.inference.uncertainty``)."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor

from condseg_monai.inference import UncertaintyMapInferer, resolve_uncertainty_map
from condseg_monai.inferers import DEFAULT_TTA_FLIPS, ConDSegInferer
from condseg_monai.metrics import flip_disagreement_map
from condseg_monai.networks import ConDSegOutput

D = torch.float64


class _Corner(torch.nn.Module):
    """Not flip-equivariant: a fixed logit map, +30 at the top-left pixel and -30 elsewhere, whatever the input.

    Its four flip passes, flipped back, put the hot pixel in the four corners; a ``stacked`` variant returns
    ConDSeg's ``(B, 4, C, H, W)`` layout with a constant SID logit of 1.
    """

    def __init__(self, stacked: bool = False) -> None:
        super().__init__()
        self.stacked = stacked
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        logits = torch.full((x.shape[0], 1, *x.shape[-2:]), -30.0, dtype=x.dtype)
        logits[..., 0, 0] = 30.0
        if not self.stacked:
            return logits
        maps = [logits, logits, logits, torch.ones_like(logits)]
        return torch.stack(maps, dim=1)


def test_resolve_uncertainty_map_validates_even_when_off() -> None:
    assert resolve_uncertainty_map(True, "flip_disagreement") == "flip_disagreement"
    assert resolve_uncertainty_map(True, "sid") == "sid"
    assert resolve_uncertainty_map(False, "sid") is None
    for on in (True, False):
        with pytest.raises(ValueError, match="uncertainty_map"):
            resolve_uncertainty_map(on, "SID")


@pytest.mark.parametrize("tta", [False, True])
def test_flip_disagreement_runs_the_four_flips_and_keeps_the_prediction(tta: bool) -> None:
    x = torch.rand(2, 3, 4, 6, dtype=D)
    net = _Corner()
    out = UncertaintyMapInferer(tta=tta, uncertainty_map="flip_disagreement")(x, net)
    assert net.calls == len(DEFAULT_TTA_FLIPS), "the map needs the four flips whatever tta is"
    assert set(out) == {"pred", "uncertainty"} and out["uncertainty"].shape == out["pred"].shape == (2, 1, 4, 6)
    # the prediction is exactly the plain inferer's: the map never changes the mask
    assert torch.equal(out["pred"], ConDSegInferer(tta=tta)(x, _Corner()))
    # one of four confident passes says "polyp" in each corner: 2 * std = sqrt(3) / 2 there (up to sigmoid(-30)),
    # exactly 0 where the four passes agree
    expected = torch.zeros(2, 1, 4, 6, dtype=torch.float32)
    expected[..., [0, 0, -1, -1], [0, -1, 0, -1]] = 3**0.5 / 2
    torch.testing.assert_close(out["uncertainty"], expected, rtol=0, atol=1e-6)
    assert torch.count_nonzero(out["uncertainty"]) == 2 * 4
    passes = ConDSegInferer(tta=True).flip_passes(x, net)
    assert torch.equal(out["uncertainty"], flip_disagreement_map(passes))


def test_sid_returns_the_sid_head_and_needs_the_stacked_output() -> None:
    x = torch.rand(1, 3, 4, 4, dtype=D)
    out = UncertaintyMapInferer(tta=True, uncertainty_map="sid")(x, _Corner(stacked=True))
    stacked = ConDSegInferer(tta=True)(x, _Corner(stacked=True))
    assert torch.equal(out["pred"], stacked[:, ConDSegOutput.MASK])
    assert torch.equal(out["uncertainty"], torch.sigmoid(torch.ones(1, 1, 4, 4)))
    with pytest.raises(ValueError, match="return_aux"):
        UncertaintyMapInferer(uncertainty_map="sid")(x, _Corner())


def test_without_a_map_it_is_the_plain_inferer_and_keeps_metadata() -> None:
    x = MetaTensor(torch.rand(1, 3, 4, 4), meta={"filename_or_obj": "a.png"})
    net = _Corner()
    plain = UncertaintyMapInferer(tta=False)(x, net)
    assert isinstance(plain, MetaTensor) and net.calls == 1
    assert torch.equal(plain, ConDSegInferer()(x, _Corner()))
    out = UncertaintyMapInferer(uncertainty_map="flip_disagreement")(x, _Corner())
    for value in out.values():
        assert isinstance(value, MetaTensor) and value.meta["filename_or_obj"] == "a.png"
    predicted = UncertaintyMapInferer(tta=True, uncertainty_map="flip_disagreement").predict(x, net)
    assert torch.equal(predicted, ConDSegInferer(tta=True)(x, net)), "predict: the prediction alone"


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="uncertainty_map"):
        UncertaintyMapInferer(uncertainty_map="entropy")
    with pytest.raises(ValueError, match="identity"):
        UncertaintyMapInferer(flips=((-1,), (-2,)), uncertainty_map="flip_disagreement")
    with pytest.raises(ValueError, match="identity"):
        UncertaintyMapInferer(flips=((),), uncertainty_map="flip_disagreement")
