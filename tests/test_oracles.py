"""Independent oracles: the XBlock and the samplers against their formulas, written here from
docs/method.md and sharing no code with the library beyond the public call under test.

Statistical tests use a fixed seed and state their false-alarm rate: a correct implementation
fails them with the stated probability over seeds, and never at the fixed seed used here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from consistency import AggregatePosterior, ResponseModel, XBlock
from tests.harness import ALGORITHM_1, ALGORITHM_2

ALPHA = 1e-6  # false-alarm rate of each statistical test below


def _mish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.tanh(torch.log1p(torch.exp(x)))


def _mlp_by_hand(unit: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Linear -> Mish -> ... -> Linear, from the weight matrices alone."""
    linears = [m for m in unit.modules() if isinstance(m, nn.Linear)]
    for i, lin in enumerate(linears):
        x = x @ lin.weight.T + lin.bias
        if i < len(linears) - 1:
            x = _mish(x)
    return x


@pytest.mark.parametrize(("unit_size", "residual"), [(1, False), (2, True), (1, True)])
def test_xblock_eval_gates_adjacency_and_forward_match_the_formulas(
    unit_size: int, residual: bool
) -> None:
    torch.manual_seed(0)
    tau = 0.7
    alpha = {(0, 1): 1.2, (0, 2): -0.4, (1, 2): 0.3}  # parent -> child
    block = XBlock(3, unit_size, tau=tau, residual=residual).double().eval()
    with torch.no_grad():
        block.gate_logits.copy_(
            torch.tensor([alpha[(0, 1)], alpha[(0, 2)], alpha[(1, 2)]], dtype=torch.float64)
        )
        for p in block.parameters():  # residual units start at zero: give them weights
            if p is not block.gate_logits:
                p.copy_(torch.randn_like(p) * 0.5)
    g = {e: 1.0 / (1.0 + math.exp(-a / tau)) for e, a in alpha.items()}
    expected_adj = torch.zeros(3, 3, dtype=torch.float64)
    for (j, i), v in g.items():
        expected_adj[j, i] = v
    torch.testing.assert_close(block.adjacency(), expected_adj, rtol=0, atol=1e-12)
    torch.testing.assert_close(block.sample_gates(5)[0], expected_adj, rtol=0, atol=1e-12)

    noise = torch.randn(4, 3, dtype=torch.float64)
    f = block.units

    def unit(i: int, parents: list[torch.Tensor]) -> torch.Tensor:
        inp = torch.cat([*parents, noise[:, i : i + 1]], dim=1)
        z = _mlp_by_hand(f[i], inp)
        return z + noise[:, i : i + 1] if residual else z

    z0 = unit(0, [])
    z1 = unit(1, [g[(0, 1)] * z0])
    z2 = unit(2, [g[(0, 2)] * z0, g[(1, 2)] * z1])
    torch.testing.assert_close(block(noise), torch.cat([z0, z1, z2], dim=1), rtol=0, atol=1e-10)
    # do(Z_1 := v): unit 1 is replaced, its parents cut; unit 2 sees the new value
    v = torch.full((unit_size,), 0.25, dtype=torch.float64)
    z2_do = unit(2, [g[(0, 2)] * z0, g[(1, 2)] * v.expand(4, unit_size)])
    torch.testing.assert_close(
        block(noise, intervene={1: v}),
        torch.cat([z0, v.expand(4, unit_size), z2_do], dim=1),
        rtol=0,
        atol=1e-10,
    )


def test_training_gates_open_with_the_logits_probability() -> None:
    """A Gumbel-sigmoid gate exceeds 0.5 exactly when logistic noise + α > 0: P = σ(α),
    whatever τ. Binomial test per edge at false-alarm rate ALPHA."""
    torch.manual_seed(0)
    logits = torch.tensor([1.5, -0.8, 0.0])
    block = XBlock(3, tau=0.3).train()
    with torch.no_grad():
        block.gate_logits.copy_(logits)
    draws = 20_000
    gates = block.sample_gates(draws)
    for (j, i), a in zip([(0, 1), (0, 2), (1, 2)], logits.tolist()):
        opened = int((gates[:, j, i] > 0.5).sum())
        p = 1.0 / (1.0 + math.exp(-a))
        assert stats.binomtest(opened, draws, p).pvalue > ALPHA, (j, i, opened / draws, p)
    assert torch.all(gates[:, [1, 2, 2], [0, 0, 1]] == 0)  # no edge against the order


def test_training_gates_follow_the_gumbel_sigmoid_law_with_temperature() -> None:
    """The soft gate g = σ((α + L) / τ), L logistic, has CDF P(g ≤ s) = σ(τ·logit(s) − α): τ
    sets how sharp the gates are. Kolmogorov-Smirnov per edge at false-alarm rate ALPHA."""
    torch.manual_seed(1)
    logits = torch.tensor([1.5, -0.8, 0.0])
    tau = 0.3
    block = XBlock(3, tau=tau).train()
    with torch.no_grad():
        block.gate_logits.copy_(logits)
    gates = block.sample_gates(5_000)
    for (j, i), a in zip([(0, 1), (0, 2), (1, 2)], logits.tolist()):
        sample = gates[:, j, i].detach().double().numpy()

        def cdf(s, a=a):  # type: ignore[no-untyped-def]
            s = np.clip(s, 1e-12, 1 - 1e-12)
            return 1 / (1 + np.exp(-(tau * np.log(s / (1 - s)) - a)))

        assert stats.kstest(sample, cdf).pvalue > ALPHA, (j, i)


def test_hard_gates_are_zero_one_with_straight_through_gradients() -> None:
    """hard=True: training gates are exactly 0/1 (open when the soft gate exceeds 0.5) and carry
    the soft gate's gradient; eval gates are 1[α > 0], so undecided logits (0) are closed."""
    torch.manual_seed(2)
    block = XBlock(3, tau=0.5, hard=True).train()
    with torch.no_grad():
        block.gate_logits.copy_(torch.tensor([0.0, 0.4, -0.4]))
    gates = block.sample_gates(2_000)
    edges = gates[:, [0, 0, 1], [1, 2, 2]]
    hard = edges.detach().round()  # (hard + soft) - soft: 0/1 up to one float rounding
    assert (
        bool(((hard == 0) | (hard == 1)).all())
        and float((edges.detach() - hard).abs().max()) < 1e-6
    )
    assert 0 < float(hard.mean()) < 1
    edges.sum().backward()
    assert block.gate_logits.grad is not None and bool((block.gate_logits.grad > 0).all())
    block.eval()
    assert block.sample_gates(1)[0, [0, 0, 1], [1, 2, 2]].tolist() == [0.0, 1.0, 0.0]


def _chi_square_uniform(counts: torch.Tensor) -> float:
    return float(stats.chisquare(counts.double().numpy()).pvalue)


def test_posterior_samples_take_whole_rows_uniformly() -> None:
    bank = torch.tensor([[0.0, 10.0], [1.0, 11.0], [2.0, 12.0], [3.0, 13.0]])
    q = AggregatePosterior(2, capacity=4)
    q.update(bank)
    draws = q.sample(8000, "posterior", generator=torch.Generator().manual_seed(0))
    rows = draws[:, 0].long()
    assert torch.equal(draws[:, 1], draws[:, 0] + 10.0)  # whole rows, never mixed
    assert _chi_square_uniform(torch.bincount(rows, minlength=4)) > ALPHA


def test_hybrid_coordinates_are_independent_uniform_rows() -> None:
    bank = torch.tensor([[0.0, 10.0], [1.0, 11.0], [2.0, 12.0]])
    q = AggregatePosterior(2, capacity=3)
    q.update(bank)
    draws = q.sample(9000, "hybrid", generator=torch.Generator().manual_seed(1))
    first, second = draws[:, 0].long(), (draws[:, 1] - 10.0).long()
    joint = torch.bincount(first * 3 + second, minlength=9)  # 9 cells, uniform if independent
    assert _chi_square_uniform(joint) > ALPHA
    assert bool((first != second).any())  # hybrids mix rows (posterior draws never do)


def test_uniform_draws_stay_within_and_cover_the_bounding_box() -> None:
    bank = torch.tensor([[-1.0, 5.0], [3.0, 6.0], [0.0, 9.0]])
    q = AggregatePosterior(2, capacity=3)
    q.update(bank)
    draws = q.sample(5000, "uniform", generator=torch.Generator().manual_seed(2))
    lo, hi = torch.tensor([-1.0, 5.0]), torch.tensor([3.0, 9.0])
    assert bool((draws >= lo).all() and (draws <= hi).all())
    scaled = (draws - lo) / (hi - lo)
    for i in range(2):  # Kolmogorov-Smirnov against U[0, 1]
        assert stats.kstest(scaled[:, i].numpy(), "uniform").pvalue > ALPHA


def test_intervention_values_come_from_the_bank_column() -> None:
    q = AggregatePosterior(3, capacity=8)
    q.update(torch.tensor([[7.0, -2.0, 0.5]]).repeat(8, 1))
    dims = torch.tensor([0, 1, 2, 2, 0])
    values = q.intervention_values(dims, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(values, torch.tensor([7.0, -2.0, 0.5, 0.5, 7.0]))


def test_vae_kl_matches_the_closed_form() -> None:
    """β·KL(N(μ, σ²) || N(0, 1)) summed over latents, averaged over the batch, against
    torch.distributions."""
    from consistency.data import SceneDataset
    from consistency.models import build_model

    torch.manual_seed(0)
    model = build_model("VAE", "scene", "plain", beta=2.5).eval()
    x = SceneDataset(6, seed=0).images
    with torch.no_grad():
        mean, logvar = model.encode(x)
        expected = (
            torch.distributions.kl_divergence(
                torch.distributions.Normal(mean, (0.5 * logvar).exp()),
                torch.distributions.Normal(0.0, 1.0),
            )
            .sum(1)
            .mean()
        )
        terms = model.loss(x)
    assert float(terms.regulariser) == pytest.approx(2.5 * float(expected), rel=1e-5)


def _kl_normal(mean_a, std_a, mean_b, std_b):  # type: ignore[no-untyped-def]
    return torch.distributions.kl_divergence(
        torch.distributions.Normal(mean_a, std_a), torch.distributions.Normal(mean_b, std_b)
    )


def test_avae_oracle_identity_the_rho_sigma_term_is_the_expectation_over_z() -> None:
    """The oracle below rests on E_{z~N(μ,σ²)} KL(N(μ̃,σ̃²) || N(ρz, 1−ρ²)) =
    KL(N(μ̃,σ̃²) || N(ρμ, 1−ρ²)) + ρ²σ² / (2(1−ρ²)) (μ̃ held fixed). Checked by Monte Carlo:
    200,000 draws, the estimator's standard error is printed into the tolerance (5 s.e.)."""
    g = torch.Generator().manual_seed(0)
    rho, mu, sigma, mu_t, sigma_t = 0.9, 0.3, 0.7, -0.4, 0.5
    z = mu + sigma * torch.randn(200_000, generator=g, dtype=torch.float64)
    s2 = math.sqrt(1 - rho**2)
    draws = _kl_normal(torch.tensor(mu_t), torch.tensor(sigma_t), rho * z, torch.tensor(s2))
    closed = float(_kl_normal(torch.tensor(mu_t), sigma_t, rho * mu, s2)) + rho**2 * sigma**2 / (
        2 * (1 - rho**2)
    )
    se = float(draws.std()) / math.sqrt(draws.numel())
    assert abs(float(draws.mean()) - closed) < 5 * se


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_avae_loss_matches_the_closed_form(beta: float) -> None:
    """AVAE regulariser = β·KL(q(z|x) || N(0, 1)) + β·E_z KL(q(z̃|x̃) || N(ρz, 1−ρ²)) with
    x̃ = D(z), summed over latents and averaged over the batch, up to the constant
    ½ − ½ log(1−ρ²) per latent that the library drops (it does not change any gradient).
    Written with torch.distributions and the public encode/decode; eval mode, so z = μ."""
    from consistency.data import SceneDataset
    from consistency.models import build_model

    torch.manual_seed(0)
    rho = 0.975
    model = build_model("AVAE", "scene", "plain", beta=beta, rho=rho).eval()
    x = SceneDataset(6, seed=0).images
    with torch.no_grad():
        mean, logvar = model.encode(x)
        std = (0.5 * logvar).exp()
        mu_t, logvar_t = model.encode(model.generate(mean))
        prior_kl = _kl_normal(mean, std, torch.zeros(()), torch.ones(()))
        consistency_kl = _kl_normal(mu_t, (0.5 * logvar_t).exp(), rho * mean, math.sqrt(1 - rho**2))
        expectation = rho**2 * std.square() / (2 * (1 - rho**2))
        constant = 0.5 - 0.5 * math.log(1 - rho**2)
        expected = beta * (prior_kl + consistency_kl + expectation + constant).sum(1).mean()
        terms = model.loss(x)
    assert float(terms.regulariser) == pytest.approx(float(expected), rel=1e-5)


def test_avae_auxiliary_images_carry_no_gradient_to_the_decoder() -> None:
    """x̃ = stopgrad(D(z)): the consistency term moves the encoder only."""
    from consistency.data import SceneDataset
    from consistency.models import build_model

    torch.manual_seed(0)
    model = build_model("AVAE", "scene", "plain").eval()
    x = SceneDataset(4, seed=0).images
    mean, logvar = model.encode(x)
    model._avae_term(mean, mean, logvar).backward()
    assert all(p.grad is None or not p.grad.any() for p in model.decoder.parameters())
    encoder_grads = [p.grad for p in model.encoder.parameters() if p.grad is not None]
    assert encoder_grads and max(float(g.abs().max()) for g in encoder_grads) > 0


@pytest.mark.parametrize("normalise", [None, "noise"])
def test_losses_closed_form_for_a_linear_response(normalise: str | None) -> None:
    """R(N) = M N with hand-picked interventions: every dimension of every prior row is set to
    the bank's only value v (a constant bank), so the losses have closed forms:

    INV = mean_rows (1/n) Σ_m Σ_{i≠m} (M[i, m] (v_m − N_m))² / s_i   (averaged over the n·T rows)
    EQV = mean_rows (1/n) Σ_{i≠m} (Ñ_i − (M Ñ)_i)² / s_i              (no XBlock: S = id)

    with s_i = 1 (raw) or the prior's variance of coordinate i. A square turned into an absolute
    value, or a changed normaliser, fails here."""
    from consistency import EquivarianceLoss, InvarianceLoss

    m = torch.tensor([[1.0, 0.2, 0.0], [0.5, 0.9, 0.0], [-1.5, 0.3, 1.1]], dtype=torch.float64)
    enc = lambda x: x @ m.T  # noqa: E731  (images = noise, so R(N) = M N)
    dec = lambda z: z  # noqa: E731
    prior = torch.tensor(
        [[0.0, 1.0, -1.0], [2.0, -1.0, 0.5], [1.0, 0.5, 2.0], [-1.0, 0.0, 1.0]],
        dtype=torch.float64,
    )
    value = torch.tensor([3.0, -2.0, 0.5], dtype=torch.float64)
    bank = AggregatePosterior(3, capacity=4, dtype=torch.float64)
    bank.update(value.repeat(4, 1))
    n, t = 3, prior.shape[0]
    s = prior.var(0, unbiased=False) if normalise == "noise" else torch.ones(3, dtype=torch.float64)
    inv_terms, eqv_terms = [], []
    for k in range(t):
        for d in range(n):
            moved = prior[k].clone()
            moved[d] = value[d]
            resp = m @ moved
            inv_terms.append(
                sum(
                    float((m[i, d] * (value[d] - prior[k, d])) ** 2 / s[i])
                    for i in range(n)
                    if i != d
                )
                / n
            )
            eqv_terms.append(
                sum(float((moved[i] - resp[i]) ** 2 / s[i]) for i in range(n) if i != d) / n
            )
    kw = dict(dims="all", n_interventions=1, intervention_values="sampler", normalise=normalise)
    inv = InvarianceLoss(
        ResponseModel(enc, dec),
        bank,
        **ALGORITHM_1,
        **kw,
    )  # type: ignore[arg-type]
    eqv = EquivarianceLoss(
        ResponseModel(enc, dec),
        bank,
        **ALGORITHM_2,
        **kw,
    )  # type: ignore[arg-type]
    assert float(inv(prior)) == pytest.approx(sum(inv_terms) / len(inv_terms), rel=1e-12)
    assert float(eqv(prior)) == pytest.approx(sum(eqv_terms) / len(eqv_terms), rel=1e-12)
