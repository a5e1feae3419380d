"""Paired interventions: the data's pairs, the penalties' laws, and PairedInterventionLoss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from consistency import (
    ConsistencyError,
    InvalidValueError,
    PairedInterventionLoss,
    ShapeError,
    XBlock,
)
from consistency.data import CausalScene, PairsDataset, Pendulum, Shapes
from consistency.functional import (
    pair_sparsity_penalty,
    pair_targets,
    target_independence_penalty,
)
from consistency.response import ResponseModel

# ----------------------------------------------------------------------------- data


@pytest.mark.parametrize("source", [CausalScene(seed=1), Pendulum(seed=1), Shapes(seed=1)])
def test_pairs_change_the_target_and_its_descendants_only(source) -> None:  # type: ignore[no-untyped-def]
    pairs = source.pairs(200)
    assert pairs.before.shape == pairs.after.shape == (200, 1, source.size, source.size)
    assert pairs.targets.dtype == torch.int64 and len(pairs) == 200
    changed = (pairs.factors_before != pairs.factors_after).numpy()
    for b in range(200):
        t = int(pairs.targets[b])
        allowed = {t} | source.descendants(t)
        assert set(np.flatnonzero(changed[b])) <= allowed
    # every factor is a target somewhere, and the observational images are the before ones
    assert set(pairs.targets.tolist()) == set(range(len(source.names)))
    # (the factors are float32 copies: a rounding of the positions moves a pixel by < 1e-3)
    assert torch.allclose(pairs.before, source.render(pairs.factors_before), atol=1e-3)
    assert torch.allclose(pairs.after, source.render(pairs.factors_after), atol=1e-3)


def test_pairs_of_a_root_change_its_children() -> None:
    scene = CausalScene(seed=2)
    pairs = scene.pairs(100, targets="angle")
    moved = (pairs.factors_before[:, 0] != pairs.factors_after[:, 0]).float().mean()
    assert moved > 0.95
    # the shadow's position and length are children of the angle: they move with it
    assert (pairs.factors_before[:, 3] != pairs.factors_after[:, 3]).float().mean() > 0.9
    assert set(pairs.targets.tolist()) == {0}


def test_pairs_are_seeded_and_reject_bad_arguments() -> None:
    a, b = CausalScene(seed=3).pairs(8), CausalScene(seed=3).pairs(8)
    assert torch.equal(a.after, b.after) and torch.equal(a.targets, b.targets)
    scene = CausalScene(seed=0)
    with pytest.raises(InvalidValueError, match="k must be a positive int"):
        scene.pairs(0)
    with pytest.raises(InvalidValueError, match="unknown factor 'colour'"):
        scene.pairs(4, targets=["colour"])
    with pytest.raises(InvalidValueError, match="at least one factor"):
        scene.pairs(4, targets=[])
    ds = PairsDataset(scene, 10, targets=[0, "light"])
    before, after, target = ds[3]
    assert before.shape == after.shape == (1, 28, 28) and int(target) in (0, 1)
    assert len(ds) == 10


# ------------------------------------------------------------------ functional laws


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 4),
    seed=st.integers(0, 2**16),
    scale=st.lists(st.floats(0.1, 10.0), min_size=4, max_size=4),
)
def test_penalties_are_unchanged_by_rescaling_coordinates(
    n: int, seed: int, scale: list[float]
) -> None:
    g = torch.Generator().manual_seed(seed)
    before = torch.randn(40, n, generator=g, dtype=torch.float64)
    after = before + 0.3 * torch.randn(40, n, generator=g, dtype=torch.float64)
    targets = torch.randint(0, n, (40,), generator=g)
    s = torch.tensor(scale[:n], dtype=torch.float64)
    assert float(pair_sparsity_penalty(before * s, after * s, targets)) == pytest.approx(
        float(pair_sparsity_penalty(before, after, targets)), rel=1e-9
    )
    causes = torch.randn(40, 1, generator=g, dtype=torch.float64) + before[:, :1]
    assert float(target_independence_penalty(causes * 3.0, before * s, targets)) == pytest.approx(
        float(target_independence_penalty(causes, before, targets)), rel=1e-9, abs=1e-12
    )
    assert torch.equal(pair_targets(before * s, after * s), pair_targets(before, after))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 5), seed=st.integers(0, 2**16))
def test_sparsity_is_zero_exactly_when_only_the_target_moves(n: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    before = torch.randn(30, n, generator=g, dtype=torch.float64)
    targets = torch.randint(0, n, (30,), generator=g)
    rows = torch.arange(30)
    after = before.clone()
    after[rows, targets] += 1.0 + torch.rand(30, generator=g, dtype=torch.float64)
    assert float(pair_sparsity_penalty(before, after, targets)) == 0.0
    assert torch.equal(pair_targets(before, after), targets)  # the one unit that moved
    other = (targets + 1) % n
    leaked = after.clone()
    leaked[rows, other] += 0.5
    assert float(pair_sparsity_penalty(before, leaked, targets)) > 0.0


def test_independence_sees_a_cause_that_follows_another_unit() -> None:
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(300, 3, generator=g, dtype=torch.float64)
    targets = torch.randint(0, 3, (300,), generator=g)
    fresh = torch.randn(300, 1, generator=g, dtype=torch.float64)
    # the cause of every pair is a copy of unit (t + 1) % 3: correlation 1 with one of 2 others
    follows = noise[torch.arange(300), (targets + 1) % 3][:, None]
    # (plus the chance correlation with the independent one, about 1 / (2 * 100 rows))
    assert float(target_independence_penalty(follows, noise, targets)) == pytest.approx(
        0.5, abs=0.02
    )
    assert float(target_independence_penalty(fresh, noise, targets)) < 0.02
    # the target's own column is ignored: a cause equal to N_t costs nothing
    own = noise[torch.arange(300), targets][:, None]
    assert float(target_independence_penalty(own, noise, targets)) < 0.02


def test_independence_counts_only_targets_with_enough_rows() -> None:
    noise = torch.randn(10, 2, dtype=torch.float64)
    targets = torch.tensor([0] * 8 + [1] * 2)
    follows = noise[:, 1:2].clone()  # follows unit 1: dependent for target 0
    value = target_independence_penalty(follows, noise, targets, min_rows=3)
    assert float(value) == pytest.approx(1.0)  # only target 0 counts (2 rows of target 1)
    none = target_independence_penalty(follows, noise, targets, min_rows=9)
    assert float(none) == 0.0


def test_penalties_reject_bad_shapes() -> None:
    a = torch.zeros(4, 2)
    with pytest.raises(ShapeError, match="targets must have shape"):
        pair_sparsity_penalty(a, a, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ShapeError, match="integer tensor"):
        pair_sparsity_penalty(a, a, torch.zeros(4))
    with pytest.raises(ShapeError, match="agree"):
        pair_sparsity_penalty(a, torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ShapeError, match="same B"):
        target_independence_penalty(torch.zeros(3, 1), a, torch.zeros(4, dtype=torch.long))


# ---------------------------------------------------------------------- the loss


class _AE(torch.nn.Module):
    def __init__(self, n: int = 3) -> None:
        super().__init__()
        self.encoder = torch.nn.Linear(6, n)
        self.latent = XBlock(n)
        self.decoder = torch.nn.Linear(n, 6)


def test_loss_trains_the_encoder_and_the_xblock() -> None:
    torch.manual_seed(0)
    model = _AE()
    with torch.no_grad():  # the units start at 0: give them a slope so the gates matter
        for unit in model.latent.units:
            unit[-1].weight.normal_()
    loss_fn = PairedInterventionLoss(model, weight=2.0, independence=1.0)
    x, y = torch.randn(64, 6), torch.randn(64, 6)
    value = loss_fn(model.encoder(x), model.encoder(y), torch.randint(0, 3, (64,)))
    assert value.ndim == 0 and math.isfinite(float(value.detach())) and float(value.detach()) > 0
    value.backward()
    assert model.encoder.weight.grad is not None and model.encoder.weight.grad.abs().sum() > 0
    assert model.latent.gate_logits.grad is not None
    assert model.latent.gate_logits.grad.abs().sum() > 0
    assert model.decoder.weight.grad is None  # nothing is decoded
    assert "independence=1.0" in repr(loss_fn)


@torch.no_grad()
def test_loss_is_the_weighted_sum_of_its_penalties() -> None:
    torch.manual_seed(1)
    model = _AE()
    before, after = torch.randn(50, 3), torch.randn(50, 3)
    targets = torch.randint(0, 3, (50,))
    sparse_only = PairedInterventionLoss(model)(before, after, targets)  # default: sparsity only
    assert float(sparse_only) == pytest.approx(float(pair_sparsity_penalty(before, after, targets)))
    both = PairedInterventionLoss(model, weight=3.0, sparsity=0.5, independence=2.0)
    rows = torch.arange(50)
    hybrid = before.clone()
    hybrid[rows, targets] = after[rows, targets]
    gates = model.latent.sample_gates(1)
    model.latent.sample_gates = lambda batch, device=None: gates  # type: ignore[method-assign]
    causes = model.latent.causes(hybrid)[rows, targets]
    expected = 3.0 * (
        0.5 * pair_sparsity_penalty(before, after, targets)
        + 2.0 * target_independence_penalty(causes, before, targets)
    )
    assert float(both(before, after, targets)) == pytest.approx(float(expected), rel=1e-5)
    # targets=None: attributed to the largest change
    inferred = PairedInterventionLoss(model, independence=1.0)(before, after)
    explicit = PairedInterventionLoss(model, independence=1.0)(
        before, after, pair_targets(before, after)
    )
    assert float(inferred) == pytest.approx(float(explicit), rel=1e-6)


def test_loss_rejects_bad_input_and_changes_nothing() -> None:
    model = _AE()
    plain = ResponseModel(torch.nn.Linear(6, 3), torch.nn.Linear(3, 6))
    with pytest.raises(InvalidValueError, match="needs a model with an XBlock"):
        PairedInterventionLoss(plain, independence=1.0)
    # the sparsity term alone needs no XBlock
    codes = torch.randn(8, 3)
    assert float(PairedInterventionLoss(plain)(codes, codes)) == 0.0
    with pytest.raises(InvalidValueError, match="sparsity must be finite and >= 0"):
        PairedInterventionLoss(model, sparsity=-1.0)
    with pytest.raises(InvalidValueError, match="min_rows"):
        PairedInterventionLoss(model, min_rows=1)
    # the weights are checked as the other losses' weight is: a finite number >= 0
    for name in ("weight", "sparsity", "independence"):
        with pytest.raises(InvalidValueError, match=f"{name} must be finite and >= 0; got inf"):
            PairedInterventionLoss(model, **{name: float("inf")})
        with pytest.raises(ConsistencyError, match=f"{name} must be a number; got str"):
            PairedInterventionLoss(model, **{name: "1"})
    loss_fn = PairedInterventionLoss(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    with pytest.raises(ShapeError, match="same shape"):
        loss_fn(torch.zeros(4, 3), torch.zeros(5, 3))
    with pytest.raises(ShapeError):
        loss_fn(torch.zeros(4, 2), torch.zeros(4, 2))
    with pytest.raises(ShapeError, match="at least 2 rows"):
        loss_fn(torch.zeros(1, 3), torch.zeros(1, 3))
    with pytest.raises(ShapeError, match="targets must have shape"):
        loss_fn(torch.zeros(4, 3), torch.zeros(4, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ShapeError, match=r"targets must lie in \[0, 3\)"):
        loss_fn(torch.zeros(4, 3), torch.ones(4, 3), torch.full((4,), 3))
    loss_fn(torch.randn(8, 3), torch.randn(8, 3))
    assert not model.training  # the loss leaves the mode alone
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_paired_interventions_example_end_to_end(capsys) -> None:  # type: ignore[no-untyped-def]
    import sys
    from pathlib import Path

    examples = str(Path(__file__).resolve().parents[1] / "examples")
    sys.path.insert(0, examples)
    try:
        import paired_interventions

        out = paired_interventions.main(["--steps", "3", "--pairs", "64", "--batch-pairs", "16"])
    finally:
        sys.path.remove(examples)
    printed = capsys.readouterr().out
    assert "learned gates (row parent, column child)" in printed and "SHD" in printed
    assert set(out) == {"shd", "edges", "p_random_order", "p_known_order"}
    assert 0.0 <= out["p_known_order"] <= 1.0 and 0 <= out["edges"] <= 6


def test_random_dags_in_the_known_order_never_reverse_an_edge() -> None:
    from consistency.metrics.ground_truth import random_dag_shd

    true = torch.zeros(4, 4)
    true[0, 1] = true[1, 2] = true[2, 3] = 1.0  # a chain in the order
    fixed = random_dag_shd(
        true, 3, samples=2000, generator=torch.Generator().manual_seed(0), keep_order=True
    )
    free = random_dag_shd(true, 3, samples=2000, generator=torch.Generator().manual_seed(0))
    # in the order, the chain itself is one of C(6, 3) = 20 graphs; in any order it is rarer
    assert fixed.share_at_most(0) == pytest.approx(1 / 20, abs=0.02)
    assert free.share_at_most(0) < fixed.share_at_most(0)
    assert fixed.mean < free.mean
