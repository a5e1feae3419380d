"""Every loss and score through one harness (in the manner of torchmetrics' ``MetricTester``).

A component is one entry of :data:`COMPONENTS`: how to compute it on a :class:`Setup` (a small
encoder / XBlock / decoder model, prior samples and a filled sampler, in a dtype on a device),
its brute-force loop oracle from ``tests/harness.py``, and what it supports. Every check below
is parametrised over the entries, so a new component is one entry, not six files:

- the loop oracle (float64), float32 against float64, bf16 autocast, CUDA against the CPU
  (``cuda``-marked), ``state_dict`` round trips, ``torch.compile(fullgraph=True)`` against eager
  (the losses), bad inputs (a clear ``ConsistencyError``, nothing of the model changed), and
  DDP (2 gloo processes: every component agrees with the single-process value).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch import nn

from consistency import (
    AggregatePosterior,
    ConsistencyError,
    ConsistencyEvaluator,
    ConsistencyMetric,
    EquivarianceLoss,
    InvarianceLoss,
    ResponseModel,
    XBlock,
    draw_interventions,
)
from tests.harness import (
    oracle_equivariance_loss,
    oracle_invariance_loss,
    oracle_scores,
    oracle_scores_authors,
)

N, D, U, T = 3, 5, 2, 6


@dataclass
class Setup:
    """The model and data every component is computed on (one seed, any dtype / device)."""

    encoder: nn.Module
    xblock: XBlock
    decoder: nn.Module
    prior: torch.Tensor  # (T, N) prior samples, also the batch's means
    images: torch.Tensor  # (2T, D) images for the metric
    sampler: AggregatePosterior

    @property
    def model(self) -> ResponseModel:
        dec, block = self.decoder, self.xblock
        return ResponseModel(
            self.encoder, lambda z: dec(block(z)), xblock=block, modules=[self.decoder]
        )

    def generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.prior.device).manual_seed(seed)


def make_setup(dtype: torch.dtype = torch.float64, device: str = "cpu", copies: int = 1) -> Setup:
    """``copies``: the sampler's rows repeated (under DDP every rank's update is gathered)."""
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(D, 8), nn.Tanh(), nn.Linear(8, N))
    block = XBlock(N, U, logit_init_mean=0.0, logit_init_std=1.0, residual=False).eval()
    dec = nn.Sequential(nn.Linear(N * U, 8), nn.Tanh(), nn.Linear(8, D))
    prior = torch.randn(T, N)
    images = torch.randn(2 * T, D)
    q = AggregatePosterior(N, capacity=64, dtype=dtype, device=device)
    q.update(torch.randn(40, N).to(device, dtype).repeat(copies, 1))
    mods = [m.to(device, dtype) for m in (enc, block, dec)]
    return Setup(*mods, prior.to(device, dtype), images.to(device, dtype), q)  # type: ignore[arg-type]


# ------------------------------------------------------------------ the components
def _invariance(reference: str) -> Callable[[Setup], torch.Tensor]:
    def run(s: Setup) -> torch.Tensor:
        loss = InvarianceLoss.faithful(
            s.model, dims="all", n_interventions=2, reference=reference, generator=s.generator(4)
        )
        return loss(s.prior)

    return run


def _invariance_oracle(reference: str) -> Callable[[Setup], torch.Tensor]:
    def oracle(s: Setup) -> torch.Tensor:
        iv = draw_interventions(
            s.prior, s.prior, dims="all", n_interventions=2, generator=s.generator(4)
        )
        gen = lambda z: s.decoder(s.xblock(z))  # noqa: E731
        raw = oracle_invariance_loss(
            s.encoder, gen, s.prior, iv.source, iv.dims, iv.values, None, reference
        )
        return 4.0 * raw  # the faithful recipe keeps the paper's λ = 4

    return oracle


def _equivariance(s: Setup) -> torch.Tensor:
    loss = EquivarianceLoss.faithful(
        s.model, dims="all", stop_reference=False, generator=s.generator(2)
    )
    return loss(s.prior)


def _equivariance_oracle(s: Setup) -> torch.Tensor:
    iv = draw_interventions(s.prior, s.prior, dims="all", generator=s.generator(2))
    gen = lambda z: s.decoder(s.xblock(z))  # noqa: E731
    return 4.0 * oracle_equivariance_loss(
        s.encoder, gen, s.xblock, s.prior, iv.source, iv.dims, iv.values, N, None
    )


def _scores(s: Setup, convention: str = "spec") -> torch.Tensor:
    report = ConsistencyEvaluator(
        s.model,
        s.sampler,
        n_samples=T,
        n_interventions=2,
        scn_samples=T,
        max_batch=5,
        convention=convention,  # type: ignore[arg-type]
        generator=s.generator(7),
        progress=False,
    ).evaluate()
    assert report.equivariance is not None
    return torch.cat(
        [report.invariance.flatten(), report.equivariance.flatten(), report.self_consistency]
    )


def _scores_oracle(s: Setup, convention: str = "spec") -> torch.Tensor:
    g = s.generator(7)  # replay the evaluator's draws
    gen = lambda z: s.decoder(s.xblock(z))  # noqa: E731
    if convention == "authors":  # hybrid prior samples, values, then distinct rows for SCN
        prior = s.sampler.sample(T, "hybrid", generator=g)
        values = s.sampler.intervention_values(torch.arange(N).repeat_interleave(2), generator=g)
        rows = torch.randperm(len(s.sampler), generator=g, device=g.device)[:T]
        inv, eqv, scn = oracle_scores_authors(
            s.encoder, gen, prior, values.view(N, 2), s.sampler.bank[rows.to(s.prior.device)],
            causes=s.xblock,
        )  # fmt: skip
        assert eqv is not None
        return torch.cat([inv.flatten(), eqv.flatten(), scn]).to(s.prior.dtype)
    prior = s.sampler.sample(T, "posterior", generator=g)
    values = s.sampler.intervention_values(torch.arange(N).repeat_interleave(2), generator=g)
    inv, eqv, scn = oracle_scores(s.encoder, gen, prior, values.view(N, 2), causes=s.xblock)
    assert eqv is not None
    return torch.cat([inv.flatten(), eqv.flatten(), scn])


def _metric(s: Setup, images: torch.Tensor | None = None) -> torch.Tensor:
    metric = ConsistencyMetric(s.model, n=N, n_samples=T, n_interventions=2, seed=3).to(
        device=s.prior.device, dtype=s.prior.dtype
    )
    for chunk in (s.images if images is None else images).split(4):
        metric.update(chunk)
    result = metric.compute()
    return torch.cat(
        [
            result.report.invariance.flatten(),
            result.self_consistency.values.flatten(),
            torch.tensor([result.reconstruction, float(result.images)]),
        ]
    )


def _metric_oracle(s: Setup) -> torch.Tensor:
    """The metric is the evaluator on the bank of the images' means (seeded with ``seed``) and
    the mean summed squared error."""
    with torch.no_grad():
        means = s.encoder(s.images)
        rec = (s.decoder(s.xblock(means)) - s.images).square().sum(1).mean()
    bank = AggregatePosterior(N, capacity=10_000, dtype=s.prior.dtype)
    bank.update(means)
    ev = ConsistencyEvaluator(
        s.model,
        bank,
        n_samples=T,
        n_interventions=2,
        generator=torch.Generator().manual_seed(3),
        progress=False,
    )
    report = ev.evaluate("posterior")
    table = ev.self_consistency_table()
    return torch.cat(
        [
            report.invariance.flatten(),
            table.values.flatten(),
            torch.tensor([float(rec), float(len(s.images))]),
        ]
    )


@dataclass(frozen=True)
class Component:
    name: str
    run: Callable[[Setup], torch.Tensor]
    oracle: Callable[[Setup], torch.Tensor]
    loss: bool = False  # an nn.Module loss: compiled, has an empty state_dict
    build: Callable[[Setup], Any] | None = None  # the object, for state_dict and bad inputs
    bad: tuple[tuple[str, Callable[[Setup], Any], str], ...] = field(default=())


def _nan_prior(s: Setup) -> torch.Tensor:
    x = s.prior.clone()
    x[0, 1] = float("nan")
    return x


COMPONENTS: tuple[Component, ...] = (
    Component(
        "invariance (reference=response)",
        _invariance("response"),
        _invariance_oracle("response"),
        loss=True,
        build=lambda s: InvarianceLoss(s.model),
        bad=(
            ("NaN latents", lambda s: InvarianceLoss(s.model)(_nan_prior(s)), "non-finite"),
            ("wrong width", lambda s: InvarianceLoss(s.model, s.sampler)(s.prior[:, :2]), "axis 1"),
        ),
    ),
    Component(
        "invariance (reference=noise)",
        _invariance("noise"),
        _invariance_oracle("noise"),
        loss=True,
        build=lambda s: InvarianceLoss(s.model),
        bad=(("weight -1", lambda s: InvarianceLoss(s.model, weight=-1.0), "weight must be"),),
    ),
    Component(
        "equivariance",
        _equivariance,
        _equivariance_oracle,
        loss=True,
        build=lambda s: EquivarianceLoss(s.model),
        bad=(
            ("NaN latents", lambda s: EquivarianceLoss(s.model)(_nan_prior(s)), "non-finite"),
            ("unknown normalise", lambda s: EquivarianceLoss(s.model, normalise="x"), "normalise"),  # type: ignore[arg-type]
        ),
    ),
    Component(
        "scores (spec)",
        _scores,
        _scores_oracle,
        build=lambda s: ConsistencyEvaluator(s.model, s.sampler, progress=False),
        bad=(
            (
                "n_samples 1",
                lambda s: ConsistencyEvaluator(s.model, s.sampler, n_samples=1),
                "n_samples",
            ),
            (
                "empty sampler",
                lambda s: ConsistencyEvaluator(s.model, AggregatePosterior(N)),
                "empty",
            ),
        ),
    ),
    Component(
        "scores (authors)",
        lambda s: _scores(s, "authors"),
        lambda s: _scores_oracle(s, "authors"),
    ),
    Component(
        "metric",
        _metric,
        _metric_oracle,
        build=lambda s: ConsistencyMetric(s.model, n=N),
        bad=(
            (
                "images not a tensor",
                lambda s: ConsistencyMetric(s.model, n=N).update([1, 2]),
                "torch.Tensor",
            ),  # type: ignore[arg-type]
            (
                "compute before update",
                lambda s: ConsistencyMetric(s.model, n=N).compute(),
                "at least 2",
            ),
        ),
    ),
)
IDS = [c.name for c in COMPONENTS]
BY_NAME = {c.name: c for c in COMPONENTS}


# ------------------------------------------------------------------ the checks
@pytest.mark.parametrize("component", COMPONENTS, ids=IDS)
def test_matches_its_loop_oracle(component: Component) -> None:
    s = make_setup()
    torch.testing.assert_close(
        component.run(s).double(), component.oracle(s).double(), rtol=1e-6, atol=1e-8
    )


@pytest.mark.parametrize("component", COMPONENTS, ids=IDS)
def test_float32_agrees_with_float64(component: Component) -> None:
    a, b = component.run(make_setup(torch.float32)), component.run(make_setup(torch.float64))
    assert a.dtype == torch.float32 or not a.is_floating_point() or a.dtype == torch.float64
    torch.testing.assert_close(a.double(), b.double(), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("component", COMPONENTS, ids=IDS)
def test_bf16_autocast_is_finite_and_float32(component: Component) -> None:
    s = make_setup(torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = component.run(s)
    assert torch.isfinite(out).all()
    if component.loss:
        assert out.dtype == torch.float32


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("component", COMPONENTS, ids=IDS)
def test_cuda_agrees_with_the_cpu(component: Component) -> None:
    gpu = component.run(make_setup(torch.float64, "cuda"))
    assert gpu.device.type == "cuda" or not component.loss
    torch.testing.assert_close(
        gpu.double().cpu(), component.run(make_setup()).double(), rtol=1e-6, atol=1e-8
    )


@pytest.mark.parametrize(
    "component", [c for c in COMPONENTS if c.build is not None], ids=lambda c: c.name
)
def test_state_dict_round_trips(component: Component) -> None:
    s = make_setup()
    assert component.build is not None
    built = component.build(s)
    if isinstance(built, nn.Module):
        state = built.state_dict()
        if component.loss:  # the losses own nothing: the model's state_dict is the one to save
            assert state == {} and list(built.parameters()) == []
        fresh = component.build(make_setup())
        fresh.load_state_dict(state)
        assert fresh.state_dict().keys() == state.keys()
        assert all(torch.equal(fresh.state_dict()[k], v) for k, v in state.items())
    else:  # the evaluator is configuration; its state is the sampler's
        q = AggregatePosterior(N, capacity=64, dtype=torch.float64)
        q.load_state_dict(s.sampler.state_dict())
        assert torch.equal(q.bank, s.sampler.bank)


@pytest.mark.parametrize("component", [c for c in COMPONENTS if c.loss], ids=lambda c: c.name)
def test_compiled_fullgraph_matches_eager(component: Component) -> None:
    """The default-recipe loss (hybrid prior samples, a random subset, random dimensions: every
    draw from the global generator) compiled whole against eager, on the same random stream."""
    s = make_setup(torch.float32)
    assert component.build is not None
    loss = component.build(s)
    torch._dynamo.reset()
    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    torch.manual_seed(1)
    got = compiled(s.prior)
    torch.manual_seed(1)
    torch.testing.assert_close(got, loss(s.prior), rtol=1e-5, atol=1e-6)


BAD = [(c, b) for c in COMPONENTS for b in c.bad]


@pytest.mark.parametrize(("component", "case"), BAD, ids=[f"{c.name}: {b[0]}" for c, b in BAD])
def test_bad_input_is_a_clear_error_and_changes_nothing(component: Component, case: Any) -> None:
    s = make_setup()
    before = [t.clone() for m in (s.encoder, s.xblock, s.decoder) for t in m.state_dict().values()]
    _, call, needle = case
    with pytest.raises(ConsistencyError, match=needle):
        call(s)
    after = [t for m in (s.encoder, s.xblock, s.decoder) for t in m.state_dict().values()]
    assert all(torch.equal(a, b) for a, b in zip(before, after))


# ------------------------------------------------------------------ DDP
def _ddp_worker(rank: int, world: int, init: str, out: str) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        results = {}
        for c in COMPONENTS:
            s = make_setup()
            if c.name == "metric":  # each rank sees its half of the images; the state syncs
                results[c.name] = _metric(s, s.images[rank::world])
            else:
                results[c.name] = c.run(s)
        torch.save(results, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_every_component_under_ddp_agrees_with_one_process() -> None:
    """Two gloo processes, each computing every component (the metric on its half of the
    images): every rank's value equals the single-process one (the metric's because its bank
    and sums are gathered across ranks; its bank holds the rows in rank order, so its oracle is
    the one process's metric on the images in that order)."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as out:
        init = f"file://{out}/rendezvous"
        mp.start_processes(
            _ddp_worker, args=(2, init, out), nprocs=2, join=True, start_method="fork"
        )
        ranks = [torch.load(f"{out}/rank{r}.pt") for r in range(2)]
    s = make_setup(copies=2)  # the bank each rank gathered: rank 0's rows, then rank 1's
    # the metric's bank gathers each update: rank 0's chunk, then rank 1's, chunk by chunk
    halves = [s.images[r::2].split(4) for r in range(2)]
    order = torch.cat([c for pair in zip(*halves) for c in pair])
    for c in COMPONENTS:
        single = _metric(s, order) if c.name == "metric" else c.run(s)
        for r in ranks:
            torch.testing.assert_close(r[c.name].double(), single.double(), rtol=1e-6, atol=1e-8)
