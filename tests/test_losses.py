from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from consistency import (
    AggregatePosterior,
    EmptySamplerError,
    EquivarianceLoss,
    InvalidValueError,
    InvarianceLoss,
    NonFiniteError,
    ResponseModel,
    ShapeError,
    XBlock,
    response,
)
from consistency.testing import (
    assert_elementwise_response_invariant,
    assert_identity_response_losses_zero,
)
from tests.harness import ALGORITHM_1, ALGORITHM_2


def invertible_pair(n: int, d: int, seed: int, scale: float = 1.0):  # type: ignore[no-untyped-def]
    """A linear decoder noise -> R^d (d >= n) and its exact left inverse as encoder."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g, dtype=torch.float64) * scale
    pinv = torch.linalg.pinv(a)
    return (lambda x: x @ pinv), (lambda z: z @ a)


@given(st.integers(2, 6), st.integers(2, 8), st.floats(0.1, 10.0), st.integers(0, 999))
def test_identity_response_has_zero_losses(n: int, batch: int, scale: float, seed: int) -> None:
    enc, dec = invertible_pair(n, n + 3, seed, scale)
    latents = torch.randn(batch, n, dtype=torch.float64) * scale
    assert_identity_response_losses_zero(ResponseModel(enc, dec), latents, seed=seed)


@pytest.mark.filterwarnings("ignore:generate does not run the model's XBlock")
@given(st.integers(2, 5), st.integers(1, 3), st.integers(0, 999))
def test_identity_response_zero_equivariance_in_cause_space(n: int, u: int, seed: int) -> None:
    torch.manual_seed(seed)
    block = XBlock(n, u, logit_init_std=1.0).double()  # training mode: Gumbel gates
    enc, lin = invertible_pair(n, n + 2, seed)
    latents = torch.randn(6, n, dtype=torch.float64)
    # G = D∘S must still be inverted by E for R = id: decode noise itself, keep S on the side
    assert_identity_response_losses_zero(ResponseModel(enc, lin, xblock=block), latents, seed=seed)


@given(st.integers(2, 6), st.integers(2, 8), st.integers(0, 999))
def test_elementwise_monotone_response_is_invariant(n: int, batch: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, generator=g, dtype=torch.float64) + 0.5

    def enc(x: torch.Tensor) -> torch.Tensor:  # strictly increasing in each coordinate alone
        return torch.tanh(a * x) + 0.1 * x.pow(3)

    latents = torch.randn(batch, n, dtype=torch.float64)
    assert_elementwise_response_invariant(ResponseModel(enc, lambda z: z * 2.0), latents, seed=seed)


@given(st.integers(2, 5), st.integers(0, 999))
def test_mixing_response_is_penalised(n: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    mix = torch.eye(n, dtype=torch.float64) + 0.5 * torch.ones(n, n, dtype=torch.float64)
    latents = torch.randn(16, n, generator=g, dtype=torch.float64)
    loss = InvarianceLoss(
        ResponseModel(lambda x: x @ mix, lambda z: z),
        dims="all",
        generator=g,
        **ALGORITHM_1,
    )
    assert float(loss(latents)) > 1e-3
    with pytest.raises(AssertionError, match="invariance loss is"):
        assert_elementwise_response_invariant(
            ResponseModel(lambda x: x @ mix, lambda z: z), latents
        )


class TinyAE(nn.Module):
    def __init__(self, d: int = 8, n: int = 3, u: int = 1, xblock: bool = False) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(d, 16), nn.Tanh(), nn.Linear(16, n))
        self.latent: nn.Module = XBlock(n, u) if xblock else nn.Identity()
        self.decoder = nn.Sequential(
            nn.Linear(n * u if xblock else n, 16), nn.Tanh(), nn.Linear(16, d)
        )

    def generate(self, noise: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.latent(noise))


def test_random_dims_is_unbiased_for_all_dims() -> None:
    torch.manual_seed(0)
    model = TinyAE(n=4)
    latents = model.encoder(torch.randn(32, 8)).detach()
    bank = AggregatePosterior(4)
    bank.update(latents)
    all_values, random_values = [], []
    for seed in range(300):
        for dims, store in (("all", all_values), ("random", random_values)):
            g = torch.Generator().manual_seed(seed)
            loss = InvarianceLoss(
                ResponseModel(model.encoder, model.generate),
                bank,
                dims=dims,
                generator=g,
                **ALGORITHM_1,
            )
            with torch.no_grad():
                store.append(float(loss(latents)))
    a, r = torch.tensor(all_values), torch.tensor(random_values)
    stderr = float((a.var() / len(a) + r.var() / len(r)).sqrt())
    assert abs(float(a.mean() - r.mean())) < 4 * stderr
    assert float(r.var()) > float(a.var())  # one dimension per sample is the noisier estimate


@pytest.mark.parametrize("cls", [InvarianceLoss, EquivarianceLoss])
def test_gradients_reach_parameters_not_prior(cls: type) -> None:
    model = TinyAE(n=3, u=2, xblock=True)
    x = torch.randn(10, 8)
    latents = model.encoder(x)
    loss = cls(
        model,
        dims="all",
        sampling="posterior",
        n_samples=None,
        weight=1.0,
    )(latents)
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    named = dict(zip(params, grads))
    for prefix in ("encoder", "decoder", "latent.units"):
        assert any(
            g is not None and float(g.abs().sum()) > 0
            for k, g in named.items()
            if k.startswith(prefix)
        ), prefix
    prior = torch.randn(10, 3, requires_grad=True)
    cls(model, sampling="posterior", n_samples=None, weight=1.0)(prior).backward()
    assert prior.grad is None


def test_stop_reference_cuts_reference_gradient() -> None:
    enc = nn.Linear(3, 3)
    prior = torch.randn(6, 3)
    g1, g2 = (torch.Generator().manual_seed(1) for _ in range(2))
    full = InvarianceLoss(
        ResponseModel(enc, lambda z: z),
        dims="all",
        generator=g1,
        stop_reference=False,
        **ALGORITHM_1,
    )(prior)
    stopped = InvarianceLoss(
        ResponseModel(enc, lambda z: z),
        dims="all",
        generator=g2,
        stop_reference=True,
        **ALGORITHM_1,
    )(prior)
    assert torch.allclose(full, stopped)
    (gf,) = torch.autograd.grad(full, enc.weight)
    (gs,) = torch.autograd.grad(stopped, enc.weight)
    assert not torch.allclose(gf, gs)


def test_responses_fast_path_equals_slow_path() -> None:
    model = TinyAE(n=4)
    x = torch.randn(12, 8)
    latents = model.encoder(x)
    x_hat = model.generate(latents)
    responses = model.encoder(x_hat)
    slow = InvarianceLoss(
        ResponseModel(model.encoder, model.generate),
        dims="all",
        n_interventions=2,
        generator=torch.Generator().manual_seed(3),
        **ALGORITHM_1,
    )(latents)
    fast = InvarianceLoss(
        ResponseModel(model.encoder, model.generate),
        dims="all",
        n_interventions=2,
        generator=torch.Generator().manual_seed(3),
        **ALGORITHM_1,
    )(latents, responses=responses)
    assert torch.equal(slow, fast)


def test_n_samples_subsets_the_batch() -> None:
    model = TinyAE(n=3)
    latents = torch.randn(40, 3)
    calls: list[int] = []

    def enc(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        return model.encoder(x)

    loss = InvarianceLoss(
        ResponseModel(enc, model.generate),
        n_samples=8,
        generator=torch.Generator().manual_seed(0),
        sampling="posterior",
        weight=1.0,
        reference="response",
    )
    loss(latents)
    assert calls == [8, 8]  # reference and intervened responses of 8 prior samples only
    calls.clear()
    loss(latents, responses=torch.randn(40, 3))
    assert calls == [8]


def test_max_batch_chunks_give_same_value() -> None:
    model = TinyAE(n=3)
    latents = torch.randn(9, 3)
    vals = [
        InvarianceLoss(
            ResponseModel(model.encoder, model.generate),
            dims="all",
            n_interventions=2,
            max_batch=mb,
            generator=torch.Generator().manual_seed(0),
            **ALGORITHM_1,
        )(latents)
        for mb in (None, 5)
    ]
    assert torch.allclose(vals[0], vals[1], atol=1e-6)


def test_sampler_prior_and_values() -> None:
    model = TinyAE(n=3)
    bank = AggregatePosterior(3)
    loss = InvarianceLoss(
        ResponseModel(model.encoder, model.generate),
        bank,
        sampling="hybrid",
        n_samples=7,
        weight=1.0,
        reference="response",
    )
    with pytest.raises(EmptySamplerError, match="empty"):
        loss()
    bank.update(torch.randn(20, 3))
    assert loss().shape == ()
    assert (
        EquivarianceLoss(
            ResponseModel(model.encoder, model.generate),
            bank,
            n_samples=5,
            sampling="posterior",
            weight=1.0,
            stop_reference=False,
        )().shape
        == ()
    )


def test_errors() -> None:
    model = TinyAE(n=3)
    with pytest.raises(ShapeError, match=r"n >= 2 .*got n = 1"):
        InvarianceLoss(
            ResponseModel(lambda x: x, lambda z: z),
            **ALGORITHM_1,
        )(torch.randn(4, 1))
    bank = AggregatePosterior(3)
    bank.update(torch.randn(4, 3))
    with pytest.raises(ShapeError, match=r"axis 1 .* must be 3; got 4"):
        InvarianceLoss(
            ResponseModel(model.encoder, model.generate),
            bank,
            **ALGORITHM_1,
        )(torch.randn(4, 4))
    with pytest.raises(ShapeError, match=r"generative map failed on input of shape \(\d+, 4\)"):
        InvarianceLoss(
            ResponseModel(model.encoder, model.generate),
            **ALGORITHM_1,
        )(torch.randn(4, 4))
    with pytest.raises(ValueError, match="dims must be one of 'random', 'all'"):
        InvarianceLoss(
            ResponseModel(model.encoder, model.generate),
            bank,
            dims="some",
            **ALGORITHM_1,
        )  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match=r"responses must have the latents' shape \(4, 3\)"):
        InvarianceLoss(
            ResponseModel(model.encoder, model.generate),
            bank,
            **ALGORITHM_1,
        )(torch.randn(4, 3), responses=torch.randn(4, 2))
    with pytest.raises(ValueError, match="no latents were given"):
        InvarianceLoss(
            ResponseModel(model.encoder, model.generate),
            **ALGORITHM_1,
        )()
    with pytest.raises(
        ShapeError, match="response E\\(D\\(noise\\)\\) must have the noise's shape"
    ):
        response(lambda x: x[:, :2], lambda z: z, torch.randn(3, 3))


def test_loss_registers_nothing_of_the_model() -> None:
    model = TinyAE(n=3)
    loss = InvarianceLoss(
        ResponseModel(model.encoder, model.generate),
        AggregatePosterior(3),
        **ALGORITHM_1,
    )
    assert list(loss.parameters()) == [] and list(loss.buffers()) == []
    assert loss.state_dict() == {}


@pytest.mark.parametrize("cls", [InvarianceLoss, EquivarianceLoss])
def test_bf16_autocast(cls: type) -> None:
    model = TinyAE(n=3, u=2, xblock=True)
    latents = torch.randn(8, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = cls(
            model,
            sampling="posterior",
            n_samples=None,
            weight=1.0,
        )(model.encoder(torch.randn(8, 8)))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    del latents


def test_compiled_networks_match_eager() -> None:
    model = TinyAE(n=3)
    enc = torch.compile(model.encoder, backend="aot_eager")
    dec = torch.compile(model.decoder, backend="aot_eager")
    latents = torch.randn(6, 3)
    eager = InvarianceLoss(
        ResponseModel(model.encoder, model.decoder),
        dims="all",
        generator=torch.Generator().manual_seed(0),
        **ALGORITHM_1,
    )(latents)
    compiled = InvarianceLoss(
        ResponseModel(enc, dec),
        dims="all",
        generator=torch.Generator().manual_seed(0),
        **ALGORITHM_1,
    )(latents)
    assert torch.allclose(eager, compiled, atol=1e-6)
    compiled.backward()


def test_training_lowers_invariance_loss() -> None:
    import copy

    torch.manual_seed(0)
    factors = torch.randn(512, 3)
    data = torch.tanh(factors @ torch.randn(3, 8)) + 0.3 * (factors @ torch.randn(3, 8)).square()

    def train(model: TinyAE, steps: int, weight: float, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        inv = InvarianceLoss(
            ResponseModel(model.encoder, model.generate),
            dims="all",
            weight=weight,
            sampling="posterior",
            n_samples=None,
            reference="response",
        )
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(steps):
            x = data[torch.randint(512, (64,), generator=gen)]
            latents = model.encoder(x)
            x_hat = model.generate(latents)
            loss = (x_hat - x).square().sum(1).mean()
            if weight:
                loss = loss + inv(latents, responses=model.encoder(x_hat))
            opt.zero_grad()
            loss.backward()
            opt.step()

    def measured(model: TinyAE) -> float:
        inv = InvarianceLoss(
            ResponseModel(model.encoder, model.generate),
            dims="all",
            n_interventions=4,
            generator=torch.Generator().manual_seed(0),
            **ALGORITHM_1,
        )
        with torch.no_grad():
            return float(inv(model.encoder(data[:256])))

    base = TinyAE(n=3)
    train(base, 150, 0.0, seed=1)  # a plain AE first: its response is far from invariant
    with_inv, without = copy.deepcopy(base), copy.deepcopy(base)
    start = measured(base)
    train(with_inv, 200, 4.0, seed=2)
    train(without, 200, 0.0, seed=2)
    assert measured(with_inv) < 0.5 * start
    assert measured(with_inv) < 0.8 * measured(without)


def test_responses_accept_any_encoder_output() -> None:
    enc = nn.Linear(3, 3)
    latents = torch.randn(5, 3)
    r = enc(latents)
    a = InvarianceLoss(
        ResponseModel(enc, lambda z: z),
        dims="all",
        generator=torch.Generator().manual_seed(0),
        **ALGORITHM_1,
    )(latents, responses=r)
    b = InvarianceLoss(
        ResponseModel(enc, lambda z: z),
        dims="all",
        generator=torch.Generator().manual_seed(0),
        **ALGORITHM_1,
    )(latents, responses=(r, torch.zeros_like(r)))
    assert torch.equal(a, b)


@given(
    st.integers(2, 5),
    st.lists(st.floats(0.05, 20.0), min_size=5, max_size=5),
    st.sampled_from(["invariance", "equivariance"]),
    st.sampled_from(["noise", "response"]),
    st.integers(0, 999),
)
def test_normalised_losses_unchanged_by_rescaling_latents(
    n: int, scales: list[float], which: str, normalise_mode: str, seed: int
) -> None:
    """E' = c·E, G' = G(·/c): the same model in rescaled coordinates has the same normalised loss
    (raw-unit losses scale with c²)."""
    torch.manual_seed(seed)
    model = TinyAE(n=n).double()
    c = torch.tensor(scales[:n], dtype=torch.float64)
    x = torch.randn(12, 8, dtype=torch.float64)

    def enc2(x: torch.Tensor) -> torch.Tensor:
        return model.encoder(x) * c

    def gen2(z: torch.Tensor) -> torch.Tensor:
        return model.generate(z / c)

    cls = InvarianceLoss if which == "invariance" else EquivarianceLoss
    values = []
    for enc, gen in ((model.encoder, model.generate), (enc2, gen2)):
        for normalise in (normalise_mode, None):
            loss = cls(
                ResponseModel(enc, gen),
                dims="all",
                normalise=normalise,
                generator=torch.Generator().manual_seed(seed),
                sampling="posterior",
                n_samples=None,
                weight=1.0,
            )
            with torch.no_grad():
                values.append(float(loss(enc(x))))
    plain_norm, plain_raw, scaled_norm, scaled_raw = values
    assert scaled_norm == pytest.approx(plain_norm, rel=1e-6, abs=1e-12)
    if float(c.min()) > 2.0 and plain_raw > 1e-9:  # raw units grow with the scale
        assert scaled_raw > 3.0 * plain_raw


def test_normalised_invariance_closed_form_for_linear_response() -> None:
    """R(N) = M N, one intervention of size d on dimension 0: coordinate i moves by M[i, 0]·d,
    so the normalised penalty is (1/n) Σ_{i≠0} (M[i,0] d)² / Var(R_i) (squared, not absolute)."""
    m = torch.tensor([[1.0, 0.0, 0.0], [0.5, 1.0, 0.0], [-2.0, 0.3, 1.0]], dtype=torch.float64)
    prior = torch.tensor(
        [[0.0, 1.0, -1.0], [1.0, -1.0, 2.0], [2.0, 0.5, 0.0], [-1.0, 0.0, 1.0]],
        dtype=torch.float64,
    )
    from consistency import functional as F

    responses = prior @ m.T
    var = responses.var(0, unbiased=False)
    for v in (0.0, 3.0):
        moved = prior.clone()
        moved[:, 0] = v
        delta = (moved - prior) @ m.T
        expected = ((delta[:, 1:] ** 2) / var[1:]).sum(1).mean() / 3
        got = F.invariance_penalty(responses, moved @ m.T, torch.zeros(4, dtype=torch.long), var)
        assert torch.allclose(got, expected)
        by_hand = sum(
            float((m[i, 0] * (v - prior[k, 0])) ** 2 / var[i]) for k in range(4) for i in (1, 2)
        ) / (3 * 4)
        assert float(got) == pytest.approx(by_hand, rel=1e-12)


def test_intervention_values_from_batch_or_sampler() -> None:
    seen: list[torch.Tensor] = []

    def gen(z: torch.Tensor) -> torch.Tensor:
        seen.append(z.detach().clone())
        return z

    latents = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    bank = AggregatePosterior(2)
    bank.update(torch.full((10, 2), -7.0))  # a stale bank: every value in it is -7
    for values_from, allowed in (("batch", {1.0, 2.0, 3.0, 4.0, 5.0, 6.0}), ("sampler", {-7.0})):
        seen.clear()
        loss = InvarianceLoss(
            ResponseModel(lambda x: x, gen),
            bank,
            dims="all",
            n_interventions=3,
            intervention_values=values_from,
            generator=torch.Generator().manual_seed(0),
            **ALGORITHM_1,
        )
        loss(latents, responses=latents)
        (intervened,) = seen
        rows = intervened.view(3, 2, 3, 2)  # (sample, dim, value, coordinate)
        for m in range(2):
            vals = set(rows[:, m, :, m].flatten().tolist())
            assert vals <= allowed and len(vals) >= 1
            column = {latents[k, m].item() for k in range(3)} if values_from == "batch" else {-7.0}
            assert vals <= column  # dimension m's values come from column m
    with pytest.raises(ValueError, match="intervention_values must be one of"):
        InvarianceLoss(
            ResponseModel(lambda x: x, gen),
            bank,
            intervention_values="bank",
            **ALGORITHM_1,
        )  # type: ignore[arg-type]


def test_normalise_needs_two_prior_samples() -> None:
    loss = InvarianceLoss(
        ResponseModel(lambda x: x, lambda z: z),
        **ALGORITHM_1,
    )
    with pytest.raises(ValueError, match="at least 2 of them; got 1"):
        loss(torch.randn(1, 3))
    raw = InvarianceLoss(
        ResponseModel(lambda x: x, lambda z: z),
        normalise=None,
        **ALGORITHM_1,
    )
    assert float(raw(torch.randn(1, 3))) == 0.0
    with pytest.raises(ValueError, match="normalise must be one of"):
        InvarianceLoss(
            ResponseModel(lambda x: x, lambda z: z),
            normalise=True,
            **ALGORITHM_1,
        )  # type: ignore[arg-type]


@pytest.mark.parametrize("prior", ["hybrid", "uniform"])
def test_off_posterior_prior_samples_are_made_from_the_batch(prior: str) -> None:
    seen: list[torch.Tensor] = []

    def enc(x: torch.Tensor) -> torch.Tensor:
        return x

    def gen(z: torch.Tensor) -> torch.Tensor:
        seen.append(z.detach().clone())
        return z

    latents = torch.tensor([[1.0, 10.0, 100.0], [2.0, 20.0, 200.0], [3.0, 30.0, 300.0]])
    loss = InvarianceLoss(
        ResponseModel(enc, gen),
        sampling=prior,
        dims="all",
        stop_reference=True,
        generator=torch.Generator().manual_seed(0),
        n_samples=None,
        weight=1.0,
        reference="response",
    )
    loss(latents)
    reference = seen[0]  # R(N) of the prior samples comes first
    assert reference.shape == (3, 3)
    for i in range(3):
        column = latents[:, i]
        if prior == "hybrid":  # every coordinate is a value of the same column of the batch
            assert set(reference[:, i].tolist()) <= set(column.tolist())
        else:  # inside the column's bounds
            assert bool((reference[:, i] >= column.min()).all())
            assert bool((reference[:, i] <= column.max()).all())
    assert not torch.equal(reference, latents)
    with pytest.raises(ValueError, match="do not pass responses="):
        loss(latents, responses=latents)


def test_reference_noise_compares_with_the_noise_coordinates() -> None:
    """reference="noise": R(Ñ)_i is compared with N_i itself. For R = c·id the response-reference
    loss is zero (R is invariant) while the noise-reference loss is (c - 1)² Σ_{i≠m} N_i² / n,
    averaged over the rows (raw units); one pass through the networks fewer."""
    c = 2.0
    calls: list[int] = []

    def dec(z: torch.Tensor) -> torch.Tensor:
        calls.append(z.shape[0])
        return c * z

    prior = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]], dtype=torch.float64)
    losses = {}
    for reference in ("response", "noise"):
        calls.clear()
        loss = InvarianceLoss(
            ResponseModel(lambda x: x, dec),
            dims="all",
            n_interventions=1,
            normalise=None,
            reference=reference,  # type: ignore[arg-type]
            generator=torch.Generator().manual_seed(0),
            sampling="posterior",
            n_samples=None,
            weight=1.0,
        )
        losses[reference] = float(loss(prior))
        assert len(calls) == (2 if reference == "response" else 1)
    assert losses["response"] == pytest.approx(0.0, abs=1e-12)
    n = 3
    # each row is intervened on every dimension m once: Σ_m Σ_{i≠m} N_i² = (n-1) Σ_i N_i²
    by_hand = sum((c - 1) ** 2 * (n - 1) * float(row.square().sum()) / n for row in prior) / (
        len(prior) * n
    )
    assert losses["noise"] == pytest.approx(by_hand, rel=1e-12)


def test_reference_must_be_known_and_old_names_are_named() -> None:
    model = ResponseModel(lambda x: x, lambda z: z)
    with pytest.raises(ValueError, match="reference must be one of 'noise', 'response'; got 'x'"):
        InvarianceLoss(model, reference="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'prior' was renamed \"noise\""):
        InvarianceLoss(model, reference="prior")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'prior' was renamed \"noise\""):
        EquivarianceLoss(model, normalise="prior")  # type: ignore[arg-type]


def test_the_model_goes_first_as_one_object() -> None:
    """The old two-callable form is refused with a message that says what to pass."""
    enc, dec = nn.Linear(4, 2), nn.Linear(2, 4)
    with pytest.raises(TypeError, match=r"the model goes first as one object"):
        InvarianceLoss(enc, dec)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"has neither encode\(\) and generate\(\) nor"):
        InvarianceLoss(enc)
    with pytest.raises(TypeError, match="ResponseModel\\(encoder, generate\\)"):
        InvarianceLoss(lambda x: x)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="generate must be a callable"):
        ResponseModel(enc, None)  # type: ignore[arg-type]


def test_a_generate_that_skips_the_xblock_is_warned_about_at_first_use() -> None:
    """With unit_size=1 the decoder alone accepts the noise: passing it where the whole
    generative map is meant runs silently without the XBlock, so the first pass warns (a hook
    on the XBlock during that pass: building the loss runs nothing)."""
    import warnings

    block, dec, enc = XBlock(3), nn.Linear(3, 5), nn.Linear(5, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = EquivarianceLoss(ResponseModel(enc, dec, xblock=block))
    with pytest.warns(UserWarning, match="generate does not run the model's XBlock"):
        loss(torch.randn(8, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        good = EquivarianceLoss(ResponseModel(enc, lambda n: dec(block(n)), xblock=block))
        good(torch.randn(8, 3))
    assert block.training


@pytest.mark.parametrize("stop_reference", [True, False])
def test_equivariance_reference_carries_gradient_only_without_stop_reference(
    stop_reference: bool,
) -> None:
    """The target S(Ñ) is computed without gradient exactly when stop_reference=True; the moved
    causes S(I(R(Ñ))) always carry one. Recorded by a forward hook on the XBlock, which the
    generative map runs first (inside R)."""
    block = XBlock(3, 1)
    loss = EquivarianceLoss(
        ResponseModel(lambda x: 0.5 * x, block, xblock=block),
        normalise=None,
        stop_reference=stop_reference,
        sampling="posterior",
        n_samples=None,
        weight=1.0,
    )
    enabled: list[bool] = []
    block.register_forward_hook(lambda *_: enabled.append(torch.is_grad_enabled()))
    loss(torch.randn(8, 3))
    assert enabled == [True, not stop_reference, True]


def test_equivariance_loss_keeps_its_configuration() -> None:
    """Every keyword reaches the loss; the defaults are the recipe's, faithful() Algorithm 2's."""
    from consistency import FAITHFUL, RECIPE

    block = XBlock(3, 1)
    model = ResponseModel(lambda x: x, block, xblock=block)
    default = EquivarianceLoss(model)
    assert (default.sampling, default.n_samples, default.weight) == (
        RECIPE.sampling,
        RECIPE.n_samples,
        RECIPE.weight,
    )
    assert default.stop_reference is True and default.batchnorm == "data"
    paper = EquivarianceLoss.faithful(model)
    assert (paper.sampling, paper.n_samples, paper.normalise, paper.batchnorm) == (
        "posterior",
        None,
        None,
        "update",
    )
    assert paper.intervention_values == FAITHFUL.intervention_values == "sampler"
    loss = EquivarianceLoss(
        model,
        n_interventions=3,
        sampling="hybrid",
        n_samples=5,
        stop_reference=True,
        weight=2.5,
        max_batch=7,
    )
    assert (loss.n_interventions, loss.sampling, loss.n_samples) == (3, "hybrid", 5)
    assert (loss.stop_reference, loss.weight, loss.max_batch) == (True, 2.5, 7)


def test_equivariance_loss_rejects_an_xblock_of_another_width() -> None:
    block = XBlock(3, 1)
    loss = EquivarianceLoss(
        ResponseModel(lambda x: x, block, xblock=block),
        **ALGORITHM_2,
    )
    with pytest.raises(ShapeError, match=r"^xblock has n = 3 units but the latents have width 4$"):
        loss(torch.randn(8, 4))


@pytest.mark.parametrize("stop_reference", [True, False])
def test_invariance_reference_response_carries_gradient_only_without_stop_reference(
    stop_reference: bool,
) -> None:
    """reference="response": R(N) is computed first, without gradient exactly when
    stop_reference=True; R(Ñ) always carries one."""
    enabled: list[bool] = []

    def encoder(x: torch.Tensor) -> torch.Tensor:
        enabled.append(torch.is_grad_enabled())
        return 0.5 * x

    InvarianceLoss(
        ResponseModel(encoder, lambda z: z),
        stop_reference=stop_reference,
        **ALGORITHM_1,
    )(torch.randn(8, 3))
    assert enabled == [not stop_reference, True]


def _tiny_xc_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Module()
    model.encoder, model.latent, model.decoder = nn.Linear(5, 3), XBlock(3), nn.Linear(3, 5)
    return model.double()


@pytest.mark.parametrize("cls", [InvarianceLoss, EquivarianceLoss])
def test_every_computes_one_training_call_in_k_with_k_times_the_weight(cls: type) -> None:
    """every=3: training calls 0, 3, 6 equal 3x the every=1 loss on the same random streams,
    and the calls between are zero scalars of the latents' dtype that draw nothing."""
    model = _tiny_xc_model()
    latents = torch.randn(8, 3, dtype=torch.float64)
    eager = cls(model, every=1, generator=torch.Generator().manual_seed(1))
    lazy = cls(model, every=3, generator=torch.Generator().manual_seed(1))
    assert "every=3" in repr(lazy)
    torch.manual_seed(2)  # the XBlock's gate noise
    expected = [eager(latents) for _ in range(3)]
    torch.manual_seed(2)
    got = [lazy(latents) for _ in range(7)]
    for a, b in zip((got[0], got[3], got[6]), expected):
        assert float(b) > 0
        torch.testing.assert_close(a, 3 * b)
    for skipped in (got[1], got[2], got[4], got[5]):
        assert skipped.shape == () and skipped.dtype == torch.float64 and float(skipped) == 0.0


def test_every_counts_only_training_calls_that_succeed() -> None:
    """A call under no_grad reports the loss with its plain weight and leaves the schedule; a
    refused call leaves it too."""
    model = _tiny_xc_model()
    latents = torch.randn(8, 3, dtype=torch.float64)
    lazy = InvarianceLoss(model, every=2, generator=torch.Generator().manual_seed(1))
    plain = InvarianceLoss(model, every=1, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), pytest.warns(UserWarning, match="no_grad"):
        torch.manual_seed(3)
        report = lazy(latents)
        torch.manual_seed(3)
        torch.testing.assert_close(report, plain(latents))
    assert float(lazy(latents)) > 0  # the first training call is computed
    with pytest.raises(ShapeError, match="rank 2"):  # a call that would be skipped checks too
        lazy(torch.randn(8, 3, 1, dtype=torch.float64))
    assert float(lazy(latents)) == 0.0
    with pytest.raises(ShapeError):  # one that would be computed
        lazy(torch.randn(8, 4, dtype=torch.float64))
    assert float(lazy(latents)) > 0


@pytest.mark.parametrize("cls", [InvarianceLoss, EquivarianceLoss])
def test_a_training_call_reads_one_value_back_the_latents_check(
    cls: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The losses check the user's latents for NaN/inf (one read-back of a value from the
    device) and nothing they drew themselves: no second finiteness check of the prior samples,
    no range check of the dimensions they drew (each would make a GPU step wait)."""
    import consistency._checks as checks
    import consistency.intervention as intervention

    model = _tiny_xc_model()
    latents = torch.randn(8, 3, dtype=torch.float64)
    loss = cls(model, every=1)
    calls: list[str] = []
    real = checks.check_finite
    monkeypatch.setattr(
        checks, "check_finite", lambda x, name, *a: (calls.append(name), real(x, name, *a))[1]
    )

    def no_public_intervene(*args: object, **kwargs: object) -> None:
        raise AssertionError("the loss went through intervene()'s checks")

    monkeypatch.setattr(intervention, "intervene", no_public_intervene)
    assert float(loss(latents)) >= 0
    assert calls == ["latents"]
    bad = latents.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(NonFiniteError, match="latents contains 1 non-finite"):
        loss(bad)


def test_phase_resumes_the_lazy_schedule_and_is_checked() -> None:
    """Setting phase = s % every puts a fresh loss where one that made s training calls is:
    the same calls are computed after it; a phase outside [0, every) is refused, unchanged."""
    model = _tiny_xc_model()
    latents = torch.randn(8, 3, dtype=torch.float64)
    running = InvarianceLoss(model, every=3)
    for _ in range(4):
        running(latents)
    resumed = InvarianceLoss(model, every=3)
    resumed.phase = 4 % 3
    assert resumed.phase == running.phase == 1
    computed = [[float(loss(latents)) > 0 for _ in range(5)] for loss in (running, resumed)]
    assert computed[0] == computed[1] == [False, False, True, False, False]
    for bad in (3, -1, 1.0, True):
        with pytest.raises(
            InvalidValueError, match=r"phase must be an int in \[0, every\) = \[0, 3\)"
        ):
            resumed.phase = bad  # type: ignore[assignment]
    assert resumed.phase == 0  # (1 + 5) % 3, as it was


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(2, 5),
    seed=st.integers(0, 2**16),
    sampling=st.sampled_from(["hybrid", "posterior"]),
)
def test_equivariance_without_an_xblock_is_the_noise_reference_invariance(
    n: int, seed: int, sampling: str
) -> None:
    """With S = id (no XBlock) the equivariance penalty compares Ñ with I_{m,v}(R(Ñ)): on the
    target both sides are v, off it Ñ_i = N_i against R(Ñ)_i, which is the invariance penalty
    with ``reference="noise"`` term by term (same normaliser: the prior's variance). So a C-E
    model trains exactly as its C-I twin under the default recipe."""
    g = torch.Generator().manual_seed(seed)
    enc_w = torch.randn(n, n, generator=g, dtype=torch.float64)
    dec_w = torch.randn(n, n, generator=g, dtype=torch.float64)
    model = ResponseModel(lambda x: torch.tanh(x @ enc_w), lambda z: torch.sin(z @ dec_w) + z)
    means = torch.randn(24, n, generator=g, dtype=torch.float64)
    kw = dict(sampling=sampling, n_samples=12, n_interventions=2)
    inv = InvarianceLoss(model, generator=torch.Generator().manual_seed(seed), **kw)  # type: ignore[arg-type]
    eqv = EquivarianceLoss(model, generator=torch.Generator().manual_seed(seed), **kw)  # type: ignore[arg-type]
    assert float(eqv(means)) == pytest.approx(float(inv(means)), rel=1e-9, abs=1e-12)
