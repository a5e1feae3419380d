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
    with pytest.raises(
        EncoderOutputError, match=r"got an object of type builtins\.dict with keys \['sigma'\]"
    ):
        posterior_mean({"sigma": torch.zeros(1)})
    with pytest.raises(TypeError, match=r"got a tuple of \(str, int\)"):
        posterior_mean(("a", 1))
    with pytest.raises(TypeError, match="NoneType"):
        posterior_mean(None)


def test_mappings_and_third_party_outputs() -> None:
    """pythae's ModelOutput (an OrderedDict with attribute access, key ``embedding``), plain dicts
    with ``mu`` / ``z_mean``, objects with ``.mu``, and diffusers' ``latent_dist``."""
    from collections import OrderedDict
    from types import SimpleNamespace

    class ModelOutput(OrderedDict):  # what pythae and transformers return
        def __getattr__(self, name):  # type: ignore[no-untyped-def]
            return self[name]

    mean = torch.randn(2, 3)
    assert posterior_mean(ModelOutput(embedding=mean, log_covariance=mean * 0)) is mean
    assert posterior_mean({"mu": mean, "logvar": mean}) is mean
    assert posterior_mean({"z_mean": mean}) is mean
    assert posterior_mean(SimpleNamespace(mu=mean)) is mean
    dist = torch.distributions.Normal(mean, 1.0)
    torch.testing.assert_close(posterior_mean(SimpleNamespace(latent_dist=dist)), mean)
    assert posterior_mean({"mean": mean, "embedding": mean + 1}) is mean  # order: mean first
