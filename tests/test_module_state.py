from __future__ import annotations

import pytest
import torch
from torch import nn

from consistency import evaluation_mode, frozen_batchnorm


def net() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Linear(4, 2))
    model.train()
    with torch.no_grad():  # running statistics far from any batch's, so modes are told apart
        model[1].running_mean.fill_(3.0)
        model[1].running_var.fill_(9.0)
    return model


def stats(model: nn.Sequential) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    bn = model[1]
    return bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()


@pytest.mark.parametrize("kwargs", [{}, {"statistics": "running"}])
def test_running_statistics_are_used_and_kept(kwargs: dict[str, str]) -> None:
    model = net()
    x = torch.randn(16, 3) + 5.0
    before = stats(model)
    with frozen_batchnorm(model, **kwargs):  # type: ignore[arg-type]  # default: "running"
        hidden = model[1](model[0](x))
        assert not model[1].training and model[2].training  # only the norm layers switch
    # exactly the eval-mode normalisation with the running statistics (3, 9)
    expected = (model[0](x) - 3.0) / torch.sqrt(torch.tensor(9.0) + model[1].eps)
    expected = expected * model[1].weight + model[1].bias
    assert torch.allclose(hidden, expected, atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(before, stats(model)))
    assert model[1].training  # restored
    hidden.sum().backward()
    assert model[1].weight.grad is not None and float(model[1].weight.grad.abs().sum()) > 0


def test_batch_statistics_without_update() -> None:
    model = net()
    x = torch.randn(16, 3) + 5.0
    before = stats(model)
    with frozen_batchnorm(model, statistics="batch"):
        hidden = model[1](model[0](x))
        assert model[1].training
    h = model[0](x)
    expected = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + model[1].eps)
    expected = expected * model[1].weight + model[1].bias
    assert torch.allclose(hidden, expected, atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(before, stats(model)))
    assert model[1].momentum == 0.1  # restored


def test_update_is_plain_training_and_restores_on_error() -> None:
    model = net()
    before = stats(model)
    with frozen_batchnorm(model, statistics="update"):
        model(torch.randn(16, 3))
    assert not torch.equal(before[0], stats(model)[0])
    model = net()
    with pytest.raises(RuntimeError, match="boom"), frozen_batchnorm(model):
        raise RuntimeError("boom")
    assert model[1].training
    with pytest.raises(ValueError, match="statistics must be one of 'running', 'batch', 'update'"):
        with frozen_batchnorm(model, statistics="frozen"):  # type: ignore[arg-type]
            pass


def test_evaluation_mode_restores_mixed_flags() -> None:
    model = net()
    model[2].eval()
    with evaluation_mode(model):
        assert not any(m.training for m in model.modules())
        assert not torch.is_grad_enabled()
    assert model.training and model[1].training and not model[2].training
