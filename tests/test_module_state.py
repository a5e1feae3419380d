from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
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


@pytest.mark.parametrize("gradient", [False, True])
def test_data_statistics_normalise_with_the_real_batch(gradient: bool) -> None:
    """Inside applied() a BatchNorm layer computes (x - mean_real) / sqrt(var_real + eps) with the
    real batch's statistics; with gradient=True gradients reach the layers before it through
    those statistics, with gradient=False (default) they are constants; the pass is unchanged by
    rescaling the weights before the layer (as training-mode BatchNorm is), nothing running
    moves, the statistics are used once, and remove() takes the hooks off."""
    from consistency.module_state import DataStatistics

    torch.manual_seed(0)
    lin, bn = torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)
    net = torch.nn.Sequential(lin, bn).train()
    stats = DataStatistics(net, gradient=gradient)
    real, gen = torch.randn(16, 3), torch.randn(5, 3) * 3 + 1
    h = lin(real)
    net(real)
    buffers = [b.clone() for b in bn.buffers()]
    with stats.applied():
        out = net(gen)
    expected = (lin(gen) - h.mean(0)) / (
        h.var(0, unbiased=False) + bn.eps
    ).sqrt() * bn.weight + bn.bias
    # solved from the running-statistics update: float32 rounding of the running buffers
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-4)
    assert all(torch.equal(a, b) for a, b in zip(buffers, bn.buffers()))
    # gradient=True: the gradient also reaches the weights through the real batch's statistics
    (g_data,) = torch.autograd.grad(out.square().sum(), lin.weight)
    (g_fixed,) = torch.autograd.grad(
        ((lin(gen) - h.mean(0).detach()) / (h.var(0, unbiased=False).detach() + bn.eps).sqrt()
         * bn.weight + bn.bias).square().sum(),
        lin.weight,
    )  # fmt: skip
    if gradient:
        assert not torch.allclose(g_data, g_fixed)
    else:
        torch.testing.assert_close(g_data, g_fixed, rtol=1e-4, atol=1e-4)
    # scale invariance: the same pass after W, b -> 3 W, 3 b
    with torch.no_grad():
        lin.weight.mul_(3), lin.bias.mul_(3)
    net(real)
    with stats.applied():
        torch.testing.assert_close(net(gen), out.detach(), rtol=1e-3, atol=1e-3)  # eps
    # used once: a second pass without a new real batch runs on the running statistics
    with stats.applied():
        assert not bn.training
        net(gen)
    assert bn.training and "forward" not in bn.__dict__
    stats.remove()
    net(real)
    with stats.applied():
        assert not bn.training  # nothing recorded any more


@pytest.mark.parametrize("shape", [(6, 3), (5, 2, 3, 4)])
def test_data_statistics_moments_match_autograd_and_refuse_a_second_derivative(
    shape: tuple[int, ...],
) -> None:
    """The fused per-channel mean / biased variance: values and gradient as autograd's
    composite, in float64 by gradcheck; a second derivative raises instead of being wrong."""
    from consistency.module_state import _moments

    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    dims = [0, *range(2, x.ndim)]
    mean, var = _moments(x)
    assert torch.allclose(mean, x.mean(dims))
    assert torch.allclose(var, x.var(dims, unbiased=False))
    assert torch.autograd.gradcheck(lambda t: _moments(t), (x,))
    g = torch.autograd.grad(_moments(x)[1].sum(), x, create_graph=True)[0]
    with pytest.raises(RuntimeError):
        g.sum().backward()


def test_data_statistics_keep_a_half_precision_input_in_its_dtype() -> None:
    from consistency.module_state import DataStatistics

    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)).train()
    stats = DataStatistics(net)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        net(torch.randn(8, 3))
        with stats.applied():
            out = net(torch.randn(4, 3))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    out.float().square().sum().backward()  # through the solved statistics' bf16 input
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    stats.remove()


@given(
    st.sampled_from([0.1, 0.5, 1.0, None, 0.0]),
    st.booleans(),
    st.booleans(),
    st.sampled_from([(7, 3), (4, 3, 2, 5)]),
    st.integers(1, 3),
    st.booleans(),
    st.integers(0, 999),
)
def test_data_statistics_are_the_real_batch_biased_moments_with_their_gradient(
    momentum: float | None,
    track: bool,
    affine: bool,
    shape: tuple[int, ...],
    steps: int,
    gradient: bool,
    seed: int,
) -> None:
    """Whatever the layer's configuration (momentum, cumulative average, no running statistics,
    momentum 0) and however many real batches it saw before, a generated pass inside applied()
    is normalised with the last real batch's per-channel mean and biased variance, and its
    gradient reaches the real batch as through torch.var_mean (gradient=True) or not at all
    (gradient=False), in float64."""
    from consistency.module_state import DataStatistics

    torch.manual_seed(seed)
    c = shape[1]
    cls = nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d
    bn = cls(c, momentum=momentum, affine=affine, track_running_stats=track).double().train()
    stats = DataStatistics(bn, gradient=gradient)
    for _ in range(steps):
        real = (torch.randn(*shape, dtype=torch.float64) * 3 + 2).requires_grad_()
        bn(real)
    gen = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(*shape, dtype=torch.float64)
    with stats.applied():
        out = bn(gen)
    dims = [0, *range(2, len(shape))]
    view = [1, -1] + [1] * (len(shape) - 2)
    var, mean = torch.var_mean(real, dims, correction=0)
    if not gradient:
        var, mean = var.detach(), mean.detach()
    expected = (gen - mean.view(view)) / (var.view(view) + bn.eps).sqrt()
    if affine:
        expected = expected * bn.weight.view(view) + bn.bias.view(view)
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)
    got = (
        torch.autograd.grad((out * weights).sum(), real, allow_unused=True, retain_graph=True)[0]
        if out.requires_grad
        else None
    )
    if gradient:
        want = torch.autograd.grad((expected * weights).sum(), real, retain_graph=True)[0]
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10)
    else:
        assert got is None
    # the generated input and the affine parameters get the composite's gradients too
    inputs = [gen, *([bn.weight, bn.bias] if affine else [])]
    got_rest = torch.autograd.grad((out * weights).sum(), inputs)
    want_rest = torch.autograd.grad((expected * weights).sum(), inputs)
    for g, w in zip(got_rest, want_rest):
        torch.testing.assert_close(g, w, rtol=1e-8, atol=1e-10)
    stats.remove()


def test_data_statistics_gradient_flag_is_checked() -> None:
    from consistency import ConsistencyError
    from consistency.module_state import DataStatistics

    with pytest.raises(ConsistencyError, match="gradient must be True or False; got 'yes'"):
        DataStatistics(nn.BatchNorm1d(2), gradient="yes")  # type: ignore[arg-type]
