from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import pytest
import torch

from consistency import EncoderOutputError, posterior_mean


class Out(NamedTuple):
    loc: torch.Tensor
    scale: torch.Tensor


@dataclass
class WithMean:
    mean: torch.Tensor


def test_accepted_outputs() -> None:
    mu = torch.randn(2, 3)
    assert posterior_mean(mu) is mu
    assert posterior_mean((mu, torch.zeros(2, 3))) is mu
    assert posterior_mean([mu]) is mu
    assert torch.equal(posterior_mean(torch.distributions.Normal(mu, 1.0)), mu)
    indep = torch.distributions.Independent(torch.distributions.Normal(mu, 1.0), 1)
    assert torch.equal(posterior_mean(indep), mu)
    assert posterior_mean(WithMean(mu)) is mu
    assert posterior_mean(Out(mu, mu.exp())) is mu  # .loc wins over position


def test_rejected_outputs_name_the_type() -> None:
    with pytest.raises(EncoderOutputError, match=r"got an object of type builtins\.dict"):
        posterior_mean({"mu": torch.zeros(1)})
    with pytest.raises(TypeError, match=r"got a tuple of \(str, int\)"):
        posterior_mean(("a", 1))
    with pytest.raises(TypeError, match="NoneType"):
        posterior_mean(None)
