"""CUDA: every component on the GPU, float32 and bf16 autocast, and device round trips.

Marked ``cuda``; skipped (with the reason shown by ``pytest -rs``) on a machine without a GPU.
``benchmarks/gpu.sh`` runs them with ``python3 -m pytest -m cuda``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from consistency import (
    AggregatePosterior,
    ConsistencyEvaluator,
    EquivarianceLoss,
    InvarianceLoss,
    ResponseModel,
    XBlock,
)
from tests.harness import ALGORITHM_1, ALGORITHM_2

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

CUDA = torch.device("cuda")


def _autoencoder(n: int = 4, width: int = 16) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(width, 32), nn.Mish(), nn.Linear(32, n))
    dec = nn.Sequential(nn.Linear(n, 32), nn.Mish(), nn.Linear(32, width))
    return enc.to(CUDA), dec.to(CUDA)


def _filled_sampler(n: int = 4, rows: int = 256) -> AggregatePosterior:
    q = AggregatePosterior(n, capacity=rows, device=CUDA)
    q.update(torch.randn(rows, n, device=CUDA))
    return q


def test_xblock_on_cuda_matches_cpu_and_round_trips() -> None:
    torch.manual_seed(0)
    block = XBlock(4, 2, logit_init_std=1.0).eval()
    noise = torch.randn(8, 4)
    expected = block(noise, intervene={1: 0.5})
    gpu = XBlock(4, 2).to(CUDA).eval()
    gpu.load_state_dict(block.state_dict())
    out = gpu(noise.to(CUDA), intervene={1: 0.5})
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(gpu.adjacency().cpu(), block.adjacency())
    back = XBlock(4, 2)
    back.load_state_dict(gpu.state_dict())  # CUDA tensors into a CPU module
    assert torch.equal(back.gate_logits, block.gate_logits)
    gpu.train()
    gpu(torch.randn(8, 4, device=CUDA)).square().mean().backward()
    assert gpu.gate_logits.grad is not None and gpu.gate_logits.grad.device.type == "cuda"


@pytest.mark.parametrize("amp", [False, True])
@pytest.mark.parametrize("kind", ["invariance", "equivariance"])
def test_losses_on_cuda_float32_and_bf16(kind: str, amp: bool) -> None:
    enc, dec = _autoencoder()
    q = _filled_sampler()
    block = XBlock(4, 1).to(CUDA)
    generate = lambda noise: dec(block(noise))  # noqa: E731
    if kind == "invariance":
        loss_fn: nn.Module = InvarianceLoss(
            ResponseModel(enc, generate),
            q,
            **ALGORITHM_1,
        )
    else:
        loss_fn = EquivarianceLoss(
            ResponseModel(enc, generate, xblock=block),
            q,
            **ALGORITHM_2,
        )
    x = torch.randn(32, 16, device=CUDA)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
        loss = loss_fn(enc(x))
    assert loss.device.type == "cuda" and loss.ndim == 0 and bool(torch.isfinite(loss))
    loss.backward()
    grads = [p.grad for p in enc.parameters()]
    assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
    if not amp and kind == "invariance":
        # the same loss on the CPU, with every random choice made irrelevant (all dimensions,
        # intervention values from a constant bank): equal up to float32 rounding
        cpu_enc, cpu_dec = (m.cpu() for m in _autoencoder())
        latents = torch.randn(32, 4)
        value = torch.tensor([[0.3, -0.2, 0.1, 0.5]]).repeat(8, 1)
        banks = [AggregatePosterior(4, capacity=8), AggregatePosterior(4, capacity=8, device=CUDA)]
        for b in banks:
            b.update(value)
        kw = dict(dims="all", values_from="sampler")
        cpu = InvarianceLoss(
            ResponseModel(cpu_enc, cpu_dec),
            banks[0],
            **ALGORITHM_1,
            **kw,
        )(latents)  # type: ignore[arg-type]
        gpu = InvarianceLoss(
            ResponseModel(enc, dec),
            banks[1],
            **ALGORITHM_1,
            **kw,
        )(latents.to(CUDA))  # type: ignore[arg-type]
        assert gpu.device.type == "cuda"
        assert float(gpu.detach()) == pytest.approx(float(cpu.detach()), rel=1e-4)


def test_sampler_device_round_trips_and_state_dict_across_devices() -> None:
    q = AggregatePosterior(3, capacity=5)
    q.update(torch.arange(12.0).view(4, 3))
    gpu = q.to(CUDA)
    assert gpu.bank.device.type == "cuda" and len(gpu) == 4
    assert torch.equal(gpu.bank.cpu(), q.bank)
    for mode in ("posterior", "hybrid", "uniform"):
        s = gpu.sample(7, mode, generator=torch.Generator(CUDA).manual_seed(0))
        assert s.device.type == "cuda" and s.shape == (7, 3)
    values = gpu.intervention_values(torch.tensor([0, 2], device=CUDA))
    assert values.device.type == "cuda"
    gpu.update(torch.ones(3, 3))  # CPU input goes to the bank's device
    assert len(gpu) == 5
    cpu = AggregatePosterior(3, capacity=5)
    cpu.load_state_dict(gpu.state_dict())
    assert torch.equal(cpu.bank, gpu.bank.cpu()) and cpu.bank.device.type == "cpu"
    back = AggregatePosterior(3, capacity=5, device=CUDA)
    back.load_state_dict(q.state_dict())
    assert back.bank.device.type == "cuda" and torch.equal(back.bank.cpu(), q.bank)


@pytest.mark.parametrize("amp", [False, True])
def test_evaluator_on_cuda_float32_and_bf16(amp: bool) -> None:
    enc, dec = _autoencoder()
    block = XBlock(4, 1).to(CUDA)
    q = _filled_sampler()
    ev = ConsistencyEvaluator(
        ResponseModel(
            enc,
            lambda noise: dec(block(noise)),
            xblock=block,
            modules=[nn.ModuleList([enc, dec, block])],
        ),
        q,
        n_samples=64,
        n_interventions=2,
        progress=False,
        generator=torch.Generator(CUDA).manual_seed(0),
    )
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
        report = ev.evaluate("hybrid")
    assert report.invariance.shape == (4, 4) and report.equivariance is not None
    assert bool(torch.isfinite(report.invariance).all())
    assert bool(torch.isfinite(report.self_consistency).all())
    identity = ConsistencyEvaluator(
        ResponseModel(lambda x: x, lambda z: z), q, n_samples=64, n_interventions=2, progress=False
    ).evaluate()
    assert identity.mean_invariance == pytest.approx(1.0, abs=1e-6)
    assert identity.mean_self_consistency == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("family", ["AE", "VAE", "SAE", "AVAE"])
def test_one_training_step_of_each_family_on_cuda(family: str) -> None:
    from consistency.models import build_model

    torch.manual_seed(0)
    model = build_model(family, "S", "XC-I").to(CUDA).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(16, 1, 28, 28, device=CUDA)
    for amp in (False, True):
        opt.zero_grad()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            terms = model.loss(x)
        terms.total.backward()
        opt.step()
        assert terms.total.device.type == "cuda" and bool(torch.isfinite(terms.total))
        assert float(terms.consistency) > 0
    assert model.sampler.bank.device.type == "cuda" and len(model.sampler) == 32


def test_ground_truth_metrics_on_cuda_match_cpu() -> None:
    from consistency.metrics import dci, irs, latent_response_matrix, mig

    torch.manual_seed(0)
    g = torch.randint(0, 4, (2000, 3))
    z = torch.tanh(g.float() @ torch.randn(3, 4)) + 0.2 * torch.randn(2000, 4)
    zc, gc = z.to(CUDA), g.to(CUDA)
    assert irs(zc, gc).score == pytest.approx(irs(z, g).score, abs=1e-9)
    assert mig(zc, gc).score == pytest.approx(mig(z, g).score, abs=1e-9)
    d_gpu, d_cpu = dci(zc, gc), dci(z, g)
    assert d_gpu.importance.device.type == "cuda"
    assert d_gpu.disentanglement == pytest.approx(d_cpu.disentanglement, abs=1e-6)
    enc, dec = _autoencoder(4, 16)
    m = latent_response_matrix(enc, dec, torch.randn(300, 4, device=CUDA))
    assert m.matrix.device.type == "cuda" and bool(torch.isfinite(m.matrix).all())
