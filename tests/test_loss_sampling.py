"""Where the losses' prior samples and intervention values come from, observed through the
encoder: with ``generate`` the identity and ``reference="prior"``, the encoder sees exactly the
intervened prior samples Ñ (one row per sample with ``dims="random"``)."""

from __future__ import annotations

import pytest
import torch

from consistency import AggregatePosterior, InvarianceLoss, ResponseModel
from tests.harness import ALGORITHM_1


class Spy:
    """An encoder R(x) = x @ M (M mixes, so the loss is not zero) that records its inputs."""

    def __init__(self, n: int) -> None:
        self.seen: list[torch.Tensor] = []
        self.mix = torch.eye(n, dtype=torch.float64) + 0.3

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return x @ self.mix


def _loss(spy: Spy, sampler: AggregatePosterior | None, **kw) -> InvarianceLoss:  # type: ignore[no-untyped-def]
    kw.setdefault("reference", "noise")
    kw.setdefault("sampling", "posterior")
    kw.setdefault("n_samples", None)
    kw.setdefault("weight", 1.0)
    return InvarianceLoss(ResponseModel(spy, lambda z: z), sampler, **kw)


def _bank(rows: torch.Tensor) -> AggregatePosterior:
    q = AggregatePosterior(rows.shape[1], capacity=rows.shape[0], dtype=torch.float64)
    q.update(rows)
    return q


def _is_row_of(rows: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    return (rows[:, None, :] == bank[None, :, :]).all(-1).any(1)


def test_values_from_the_sampler_even_with_one_row_and_from_the_batch_while_it_is_empty() -> None:
    latents = torch.randn(6, 3, dtype=torch.float64)
    spy = Spy(3)
    one_row = _bank(torch.tensor([[7.0, 8.0, 9.0]], dtype=torch.float64))
    _loss(spy, one_row, dims="all", intervention_values="sampler")(latents)
    seen = spy.seen[-1].view(6, 3, 3)  # (sample, intervened dim, coordinates)
    assert torch.equal(seen.diagonal(dim1=1, dim2=2), torch.tensor([[7.0, 8.0, 9.0]] * 6).double())
    empty = AggregatePosterior(3, dtype=torch.float64)
    _loss(spy, empty, dims="all", intervention_values="sampler")(latents)  # falls back to the batch
    values = spy.seen[-1].view(6, 3, 3).diagonal(dim1=1, dim2=2)
    for m in range(3):
        assert bool(torch.isin(values[:, m], latents[:, m]).all())


@pytest.mark.parametrize("prior", ["hybrid", "uniform"])
def test_batch_made_prior_samples_one_per_row_and_repeatable(prior: str) -> None:
    """B hybrids / uniform draws of a batch of B (not n of them); a seeded generator repeats
    them whatever the global RNG did in between."""
    latents = torch.randn(10, 3, dtype=torch.float64)
    values: list[torch.Tensor] = []
    for global_seed in (1, 2):
        spy = Spy(3)
        torch.manual_seed(global_seed)
        g = torch.Generator().manual_seed(0)
        _loss(spy, None, sampling=prior, dims="all", generator=g)(latents)
        values.append(spy.seen[-1])
        assert spy.seen[-1].shape == (10 * 3, 3)
    assert torch.equal(values[0], values[1])


def test_prior_samples_drawn_from_the_sampler_count_mode_and_generator() -> None:
    g = torch.Generator().manual_seed(0)
    small = _bank(torch.randn(50, 3, generator=g, dtype=torch.float64))
    big = _bank(torch.randn(300, 3, generator=g, dtype=torch.float64))
    spy = Spy(3)
    _loss(spy, small)()
    assert spy.seen[-1].shape == (50, 3)  # default: min(len(sampler), 128)
    _loss(spy, big)()
    assert spy.seen[-1].shape == (128, 3)
    _loss(spy, big, n_samples=7)()
    assert spy.seen[-1].shape == (7, 3)
    # dims="all": each prior sample intervened on every dimension in turn, so its untouched
    # coordinates rebuild the sample itself
    _loss(spy, big, n_samples=40, dims="all", sampling="posterior")()
    seen = spy.seen[-1].view(40, 3, 3)
    untouched = seen[:, 0, 1:]  # rows intervened on dim 0 keep coordinates 1, 2 of the sample
    assert bool(_is_row_of(torch.cat([seen[:, 1, :1], untouched], 1), big.bank).all())
    _loss(spy, big, n_samples=40, dims="all", sampling="uniform")()
    seen = spy.seen[-1].view(40, 3, 3)
    rebuilt = torch.cat([seen[:, 1, :1], seen[:, 0, 1:]], 1)
    assert not bool(_is_row_of(rebuilt, big.bank).any())  # uniform draws are not bank rows
    runs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        spy = Spy(3)
        _loss(spy, big, generator=torch.Generator().manual_seed(5))()
        runs.append(spy.seen[-1])
    assert torch.equal(runs[0], runs[1])


def test_no_latents_and_no_sampler_says_so() -> None:
    with pytest.raises(
        ValueError,
        match=r"^no latents were given and the loss has no sampler to draw prior samples from: "
        r"call loss\(latents\) with the batch's encoder means, or build it with a sampler$",
    ):
        _loss(Spy(3), None)()


def test_forward_messages_name_what_went_wrong() -> None:
    q = _bank(torch.randn(20, 3, dtype=torch.float64))
    with pytest.raises(
        ValueError, match=r"^responses= needs the latents they respond to; pass latents too$"
    ):
        _loss(Spy(3), q)(None, responses=torch.randn(4, 3, dtype=torch.float64))
    with pytest.raises(
        ValueError,
        match=r"with sampling='hybrid' the prior samples are hybrid draws made from the latents, "
        r"whose responses the loss computes: do not pass responses=$",
    ):
        _loss(Spy(3), None, sampling="hybrid")(torch.randn(4, 3), responses=torch.randn(4, 3))
    with pytest.raises(
        ValueError,
        match=r"needs at least 2 of them; got 1 \(pass more latents, or normalise=None\)$",
    ):
        _loss(Spy(3), None)(torch.randn(1, 3))
    with pytest.raises(ValueError, match=r"^n_samples must be >= 1; got 0$"):
        _loss(Spy(3), None, n_samples=0)
    with pytest.raises(ValueError, match=r"^n_interventions must be >= 1; got 0$"):
        _loss(Spy(3), None, n_interventions=0)
    with pytest.raises(ValueError, match=r"^latents: axis 1 \(latent width n\) must be 3; got 4"):
        _loss(Spy(3), q)(torch.randn(4, 4, dtype=torch.float64))
    from consistency import XBlock

    skipping = InvarianceLoss(ResponseModel(Spy(3), lambda z: z, xblock=XBlock(3)))
    with pytest.warns(UserWarning, match=r"^generate does not run the model's XBlock"):
        skipping(torch.randn(4, 3, dtype=torch.float64))


def test_a_subset_as_large_as_the_batch_is_the_batch_and_subsets_follow_the_generator() -> None:
    latents = torch.randn(8, 3, dtype=torch.float64)
    values = []
    for n_samples in (None, 8):
        spy = Spy(3)
        _loss(spy, None, n_samples=n_samples, generator=torch.Generator().manual_seed(1))(latents)
        values.append(spy.seen[-1])
    assert torch.equal(values[0], values[1])  # no reshuffle when nothing is left out
    runs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        spy = Spy(3)
        _loss(spy, None, n_samples=3, generator=torch.Generator().manual_seed(4))(latents)
        runs.append(spy.seen[-1])
    assert runs[0].shape == (3, 3) and torch.equal(runs[0], runs[1])


def test_default_stop_reference_and_a_constant_coordinate_under_prior_normalisation() -> None:
    """The reference is a fixed target by default; a coordinate with zero variance over the
    prior samples gets a floored (finite) normaliser, not a division by zero."""
    assert (
        InvarianceLoss(
            ResponseModel(Spy(3), lambda z: z),
            **ALGORITHM_1,
        ).stop_reference
        is True
    )
    latents = torch.randn(8, 3, dtype=torch.float64)
    latents[:, 1] = 0.0
    assert bool(torch.isfinite(_loss(Spy(3), None, dims="all")(latents)))
    # every variance 0 (a collapsed encoder): raw units, the same as normalise=None, not inf
    constant = torch.ones(8, 3, dtype=torch.float64)
    raw = _loss(Spy(3), None, dims="all", normalise=None)(constant)
    assert float(raw) > 0 and torch.equal(_loss(Spy(3), None, dims="all")(constant), raw)
