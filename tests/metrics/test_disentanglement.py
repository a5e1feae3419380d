"""IRS, MIG, DCI and the latent response matrices: against disent (an implementation no one here
wrote), against the published formulas, against hand-computed values, and their invariances."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from consistency.data import CausalScene
from consistency.errors import InvalidValueError, ShapeError
from consistency.metrics import (
    completeness,
    conditioned_response_matrix,
    dci,
    discretize,
    disentanglement,
    irs,
    lasso,
    latent_response_matrix,
    mig,
)

from .reference import disent_metrics, irs_published

DISENT = disent_metrics()
needs_disent = pytest.mark.skipif(
    DISENT is None,
    reason="disent (pip install --no-deps disent==0.8.0) and scikit-learn are needed for the "
    "cross-check; the README's test command installs them",
)


def _mixed(seed: int, n: int, levels: tuple[int, ...], size: int, noise: float = 0.3):
    """Discrete factors ``(N, F)`` and codes ``(N, n)``: a random nonlinear mixture plus noise."""
    rng = np.random.default_rng(seed)
    ys = np.stack([rng.integers(0, k, size) for k in levels], 1)
    mix = rng.normal(size=(len(levels), n))
    mus = np.tanh(ys @ mix / 5.0) + noise * rng.normal(size=(size, n))
    return mus, ys


# ----------------------------------------------------------------------------------- discretize
@given(st.integers(0, 10_000), st.integers(1, 30), st.integers(2, 200))
def test_discretize_is_numpys_histogram_digitize(seed: int, bins: int, size: int) -> None:
    x = np.random.default_rng(seed).normal(size=(size, 3)) * [1.0, 1e-3, 50.0]
    x[:, 2] = np.round(x[:, 2])  # ties and repeated values
    expected = np.stack([np.digitize(c, np.histogram(c, bins)[1][:-1]) - 1 for c in x.T], 1)
    assert torch.equal(discretize(torch.from_numpy(x), bins), torch.from_numpy(expected))


def test_discretize_constant_column_is_one_bin() -> None:
    out = discretize(torch.full((5, 1), 3.0), bins=7)
    assert out.unique().numel() == 1


# ------------------------------------------------------------------------------------------ IRS
def test_irs_hand_computed() -> None:
    # one factor with two values; group 0 has codes 0, 1, 3, 4 (mean 2, |diff| 1, 1, 2, 2),
    # group 1 has 10, 10, 10, 10 (|diff| 0). Overall mean 6, max deviation |0 - 6| = 6.
    z = torch.tensor([[0.0], [1], [3], [4], [10], [10], [10], [10]])
    g = torch.tensor([[0], [0], [0], [0], [1], [1], [1], [1]])
    # q = 0.5: median of (1, 1, 2, 2) = 1.5 and 0 -> EMPIDA 0.75 -> IRS = 1 - 0.75 / 6
    assert irs(z, g, diff_quantile=0.5).score == pytest.approx(1 - 0.75 / 6, abs=1e-12)
    # q = 0.8: position 0.8 * 3 = 2.4 in (1, 1, 2, 2) -> 2 -> EMPIDA 1 -> 1 - 1/6
    assert irs(z, g, diff_quantile=0.8).score == pytest.approx(1 - 1 / 6, abs=1e-12)
    # q = 0.4: position 1.2 -> 1 + 0.2 * (2 - 1) = 1.2 -> EMPIDA 0.6
    assert irs(z, g, diff_quantile=0.4).score == pytest.approx(1 - 0.6 / 6, abs=1e-12)


def test_irs_perfect_and_constant_latents() -> None:
    g = torch.cartesian_prod(torch.arange(4), torch.arange(3)).float()
    z = torch.cat([g * torch.tensor([2.0, -1.0]), torch.zeros(12, 1)], 1)  # a dead latent
    result = irs(z, g)
    assert result.score == pytest.approx(1.0, abs=1e-12)
    assert result.active.tolist() == [True, True, False]
    assert result.parents.tolist() == [0, 1, -1]
    assert math.isnan(float(result.per_latent[2]))
    assert irs(torch.zeros(12, 2), g).score == 0.0  # no active latent: disentanglement_lib's 0


@given(
    st.integers(0, 10_000),
    st.integers(1, 4),
    st.lists(st.integers(2, 6), min_size=1, max_size=3),
    st.sampled_from([0.5, 0.9, 0.99, 1.0]),
)
def test_irs_is_the_published_formula(seed: int, n: int, levels: list[int], q: float) -> None:
    mus, ys = _mixed(seed, n, tuple(levels), 300)
    ref = irs_published(ys.T.astype(float), mus.T, q)
    ours = irs(torch.from_numpy(mus), torch.from_numpy(ys), diff_quantile=q)
    assert ours.score == pytest.approx(float(ref["avg_score"]), abs=1e-10)
    np.testing.assert_allclose(ours.matrix.numpy(), ref["IRS_matrix"], atol=1e-10)


def test_irs_continuous_factors_binned_like_disentanglement_lib() -> None:
    _, factors = CausalScene(seed=3).sample(400)
    rng = np.random.default_rng(3)
    codes = factors.double().numpy() @ rng.normal(size=(5, 4)) + rng.normal(size=(400, 4))
    ref = irs_published(factors.double().numpy().T, codes.T)
    assert irs(torch.from_numpy(codes), factors.double()).score == pytest.approx(
        float(ref["avg_score"]), abs=1e-10
    )


@given(
    st.integers(0, 10_000),
    st.lists(st.floats(0.01, 100.0), min_size=3, max_size=3),
    st.floats(0.01, 100.0),
)
def test_irs_under_rescaling_latents(seed: int, scale: list[float], common: float) -> None:
    """Per latent, IRS is scale-free (matrix, per-latent scores); the average weights latents by
    their maximal deviation, so it is unchanged by a common rescaling and shift only."""
    mus, ys = _mixed(seed, 3, (3, 4), 200)
    z, g = torch.from_numpy(mus), torch.from_numpy(ys)
    a = irs(z, g)
    b = irs(z * torch.tensor(scale, dtype=torch.float64) - 7.0, g)
    torch.testing.assert_close(b.matrix, a.matrix)
    torch.testing.assert_close(b.per_latent, a.per_latent)
    assert irs(z * common + 3.0, g).score == pytest.approx(a.score, abs=1e-9)


# ------------------------------------------------------------------------------------------ MIG
@needs_disent
@given(
    st.integers(0, 10_000), st.integers(2, 5), st.lists(st.integers(2, 8), min_size=1, max_size=3)
)
def test_mig_agrees_with_disent(seed: int, n: int, levels: list[int]) -> None:
    assert DISENT is not None
    mus, ys = _mixed(seed, n, tuple(levels), 500)
    ref = float(DISENT["_mig"]._compute_mig(mus.T, ys.T)["mig.discrete_score"])
    assert mig(torch.from_numpy(mus), torch.from_numpy(ys)).score == pytest.approx(ref, abs=1e-12)


@needs_disent
def test_mutual_information_matrix_agrees_with_disent() -> None:
    assert DISENT is not None
    mus, ys = _mixed(1, 4, (3, 7), 800)
    utils = DISENT["utils"]
    ref = utils.discrete_mutual_info(utils.histogram_discretize(mus.T, 20), ys.T)
    ours = mig(torch.from_numpy(mus), torch.from_numpy(ys))
    np.testing.assert_allclose(ours.mutual_information.numpy(), ref, atol=1e-12)
    np.testing.assert_allclose(ours.entropy.numpy(), utils.discrete_entropy(ys.T), atol=1e-12)


def test_mig_hand_computed() -> None:
    # two balanced binary factors, full factorial; latent 0 = factor 0, latent 1 = factor 0 xor 1
    g = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]]).repeat(5, 1)
    z = torch.stack([g[:, 0], g[:, 0] ^ g[:, 1]], 1).float()
    result = mig(z, g)
    ln2 = math.log(2)
    # I(z0; g0) = ln 2, I(z1; g0) = 0 -> gap 1; g1: both latents carry 0 nats about it -> gap 0
    torch.testing.assert_close(
        result.mutual_information, torch.tensor([[ln2, 0.0], [0.0, 0.0]], dtype=torch.float64)
    )
    assert result.gap.tolist() == pytest.approx([1.0, 0.0], abs=1e-12)
    assert result.score == pytest.approx(0.5, abs=1e-12)


def test_mig_unchanged_by_affine_maps_of_latents() -> None:
    mus, ys = _mixed(5, 3, (4, 5), 600)
    z = torch.from_numpy(mus)
    a = mig(z, torch.from_numpy(ys)).score
    b = mig(z * torch.tensor([3.0, -0.5, 20.0], dtype=torch.float64) + 1.0, torch.from_numpy(ys))
    assert b.score == pytest.approx(a, abs=1e-12)


# ------------------------------------------------------------------------------------------ DCI
@needs_disent
@given(st.integers(0, 10_000), st.integers(1, 6), st.integers(2, 5))
def test_disentanglement_and_completeness_agree_with_disent(seed: int, n: int, f: int) -> None:
    assert DISENT is not None
    r = np.random.default_rng(seed).random((max(n, 2), f)) ** 3
    r[0] = 0.0  # a latent with no importance
    ours_d, _ = disentanglement(torch.from_numpy(r))
    ours_c, _ = completeness(torch.from_numpy(r))
    assert ours_d == pytest.approx(float(DISENT["_dci"]._disentanglement(r)), abs=1e-12)
    assert ours_c == pytest.approx(float(DISENT["_dci"]._completeness(r)), abs=1e-12)


@needs_disent
@pytest.mark.parametrize("seed", [0, 1])
def test_dci_gbt_agrees_with_disent(seed: int) -> None:
    """Both fit scikit-learn's GradientBoostingClassifier() per factor; disent leaves its random
    state unseeded, we seed it, and the trees' feature order at tied splits follows it. Measured
    difference on these inputs: below 0.02 for D and C and 0.02 for accuracy (10,000 x 10 x 5:
    0.0012 on D, 0.0007 on C, 0.0015 on accuracy)."""
    assert DISENT is not None
    mus, ys = _mixed(seed, 3, (3, 4), 500)
    ref = DISENT["_dci"]._compute_dci(mus[:400].T, ys[:400].T, mus[400:].T, ys[400:].T)
    ours = dci(
        torch.from_numpy(mus[:400]),
        torch.from_numpy(ys[:400]),
        test_codes=torch.from_numpy(mus[400:]),
        test_factors=torch.from_numpy(ys[400:]),
        importance="gbt",
    )
    assert ours.disentanglement == pytest.approx(float(ref["dci.disentanglement"]), abs=0.02)
    assert ours.completeness == pytest.approx(float(ref["dci.completeness"]), abs=0.02)
    assert ours.informativeness == pytest.approx(float(ref["dci.informativeness_test"]), abs=0.02)
    assert ours.informativeness_train == pytest.approx(
        float(ref["dci.informativeness_train"]), abs=0.02
    )


@given(st.integers(0, 10_000), st.sampled_from([0.0, 0.01, 0.1]))
def test_lasso_is_sklearns(seed: int, alpha: float) -> None:
    linear_model = pytest.importorskip("sklearn.linear_model", reason="scikit-learn is the oracle")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, 4))
    x[:, 1] += 0.8 * x[:, 0]  # correlated columns
    y = x @ rng.normal(size=(4, 2)) + 0.5 * rng.normal(size=(300, 2))
    ours = lasso(torch.from_numpy(x), torch.from_numpy(y), alpha, iterations=3000)
    for k in range(2):
        ref = linear_model.Lasso(alpha=alpha, fit_intercept=False, tol=1e-12, max_iter=100_000)
        if alpha == 0.0:
            ref = linear_model.LinearRegression(fit_intercept=False)
        ref.fit(x, y[:, k])
        np.testing.assert_allclose(ours[:, k].numpy(), ref.coef_, atol=1e-6)


def test_dci_lasso_perfect_code_and_rotated_code() -> None:
    g = torch.randn(3000, 3, dtype=torch.float64)
    perfect = dci(g[:, [2, 0, 1]] * torch.tensor([3.0, -1.0, 0.1], dtype=torch.float64), g)
    assert perfect.disentanglement == pytest.approx(1.0, abs=1e-6)
    assert perfect.completeness == pytest.approx(1.0, abs=1e-6)
    assert perfect.informativeness == pytest.approx(1.0, abs=1e-3)
    assert perfect.importance.argmax(0).tolist() == [1, 2, 0]
    q, _ = torch.linalg.qr(torch.tensor([[1.0, 1, 1], [1, -1, 0], [1, 1, -2]], dtype=torch.float64))
    rotated = dci(g @ q, g)  # every latent carries every factor
    assert rotated.disentanglement < 0.3 and rotated.completeness < 0.3
    assert rotated.informativeness == pytest.approx(1.0, abs=1e-3)  # still informative


def test_dci_hand_computed_from_importances() -> None:
    # latent 0 only for factor 0; latent 1 split evenly over both factors
    d, per_latent = disentanglement(torch.tensor([[2.0, 0.0], [1.0, 1.0]]))
    assert per_latent.tolist() == pytest.approx([1.0, 0.0], abs=1e-9)
    assert d == pytest.approx(0.5, abs=1e-9)  # weights 2/4 and 2/4
    c, per_factor = completeness(torch.tensor([[2.0, 0.0], [1.0, 1.0]]))
    h0 = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)) / math.log(2)
    assert per_factor.tolist() == pytest.approx([1 - h0, 1.0], abs=1e-9)  # factor 1: latent 1 only
    assert c == pytest.approx(3 / 4 * (1 - h0) + 1 / 4, abs=1e-9)  # weights 3/4 and 1/4


# -------------------------------------------------------------------------- latent responses
def test_latent_response_of_a_linear_response_is_its_matrix() -> None:
    a = torch.tensor([[1.0, 0.0, 0.0], [2.0, 1.0, 0.0], [0.0, -3.0, 0.5]])  # R(z) = A z
    z = torch.randn(4000, 3)
    result = latent_response_matrix(lambda x: x @ a.T, lambda n: n, z)
    # R(z^(j)) - R(z) = A[:, j] (z'_j - z_j): raw[j, i] = |A_ij| * RMS(z'_j - z_j)
    expected = a.T.abs() / a.T.abs().diagonal()[:, None]
    torch.testing.assert_close(result.raw / result.raw.diagonal()[:, None], expected)


@given(st.integers(0, 10_000), st.lists(st.floats(0.05, 20.0), min_size=3, max_size=3))
def test_latent_response_unchanged_by_rescaling_the_latent_space(seed: int, s: list[float]) -> None:
    w = torch.randn(3, 3, generator=torch.Generator().manual_seed(seed))
    scale = torch.tensor(s)
    z = torch.randn(300, 3, generator=torch.Generator().manual_seed(seed + 1))
    enc, gen = (lambda x: torch.tanh(x @ w)), (lambda n: n @ w.T)
    a = latent_response_matrix(enc, gen, z, generator=torch.Generator().manual_seed(0))
    b = latent_response_matrix(
        lambda x: enc(x) * scale,
        lambda n: gen(n / scale),
        z * scale,
        generator=torch.Generator().manual_seed(0),
    )
    torch.testing.assert_close(a.matrix, b.matrix, rtol=1e-4, atol=1e-5)


def test_latent_response_from_a_sampler_and_bad_input() -> None:
    from consistency import AggregatePosterior

    sampler = AggregatePosterior(dim=2, capacity=100)
    sampler.update(torch.randn(100, 2))
    m = latent_response_matrix(lambda x: x, lambda n: n, sampler, n_samples=50).matrix
    assert m.shape == (2, 2)
    with pytest.raises(InvalidValueError, match="at least 2"):
        latent_response_matrix(lambda x: x, lambda n: n, torch.randn(1, 2))
    with pytest.raises(TypeError, match="AggregatePosterior"):
        latent_response_matrix(lambda x: x, lambda n: n, [1.0, 2.0])  # type: ignore[arg-type]


class _FactorScene(CausalScene):
    """The scene's SCM with images = the factors themselves (so an identity encoder is perfect)."""

    def render(self, factors, chunk: int = 4096):  # type: ignore[no-untyped-def,override]
        return torch.as_tensor(np.asarray(factors), dtype=torch.float32)


def test_conditioned_response_moves_only_the_factor_and_its_descendants() -> None:
    scene = _FactorScene(seed=0)
    result = conditioned_response_matrix(lambda x: x, lambda n: n, scene, n_samples=200, steps=5)
    assert result.matrix.shape == (5, 5) and result.values.shape == (5, 5)
    for k in range(5):
        moved = {k} | scene.descendants(k)
        for i in range(5):
            if i in moved:
                assert float(result.matrix[k, i]) > 0.05, (k, i)
            else:
                assert float(result.matrix[k, i]) == 0.0, (k, i)


# ----------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: irs(torch.randn(5, 2), torch.zeros(4, 1)), ShapeError, "share axis 0"),
        (lambda: irs(torch.randn(5, 2), torch.zeros(5)), ShapeError, r"\(N, F\)"),
        (
            lambda: irs(torch.randn(5, 2), torch.zeros(5, 1), diff_quantile=0),
            InvalidValueError,
            "diff_quantile",
        ),
        (
            lambda: mig(torch.randn(5, 1), torch.zeros(5, 1)),
            InvalidValueError,
            "at least 2 latents",
        ),
        (
            lambda: mig(torch.randn(5, 2), torch.zeros(5, 1)),
            InvalidValueError,
            "factor 0 is constant",
        ),
        (
            lambda: mig(torch.full((5, 2), float("nan")), torch.zeros(5, 1)),
            InvalidValueError,
            "non-finite",
        ),
        (
            lambda: dci(torch.randn(50, 2), torch.randn(50, 2), importance="forest"),
            InvalidValueError,
            "'lasso' or 'gbt'",
        ),  # type: ignore[arg-type]
        (lambda: dci(torch.randn(50, 2), torch.randn(50, 1)), InvalidValueError, "F >= 2"),
        (
            lambda: dci(torch.randn(50, 2), torch.randn(50, 2), test_codes=torch.randn(5, 2)),
            InvalidValueError,
            "both",
        ),
        (
            lambda: dci(
                torch.randn(50, 2),
                torch.randn(50, 2),
                test_codes=torch.randn(5, 3),
                test_factors=torch.randn(5, 2),
            ),
            ShapeError,
            "training widths",
        ),
        (
            lambda: dci(torch.randn(50, 2), torch.cat([torch.randn(50, 1), torch.ones(50, 1)], 1)),
            InvalidValueError,
            "constant",
        ),
        (
            lambda: irs(torch.randn(5, 2), torch.tensor([[1.0], [float("inf")], [0], [0], [0]])),
            InvalidValueError,
            "factors contain NaN or inf",
        ),
    ],
)
def test_bad_input_is_named(call, error, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        call()


def test_metrics_follow_float32_codes_and_agree_with_float64() -> None:
    mus, ys = _mixed(2, 3, (3, 4), 400)
    z64, g = torch.from_numpy(mus), torch.from_numpy(ys)
    z32 = z64.float()
    assert irs(z32, g).score == pytest.approx(irs(z32.double(), g).score, abs=1e-12)
    assert mig(z32, g).score == pytest.approx(mig(z32.double(), g).score, abs=1e-12)
    assert dci(z32, g).disentanglement == pytest.approx(
        dci(z32.double(), g).disentanglement, abs=1e-9
    )


def test_ground_truth_scores_from_an_encoder_equal_those_from_its_codes() -> None:
    from consistency.metrics import encode_all, ground_truth_scores

    mus, ys = _mixed(4, 3, (3, 4), 300)
    images = torch.from_numpy(mus).float().reshape(300, 1, 3)
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 3))
    codes = encode_all(encoder, images, max_batch=64)
    assert codes.shape == (300, 3) and not codes.requires_grad
    a = ground_truth_scores(encoder, torch.from_numpy(ys), images=images, max_batch=7)
    b = ground_truth_scores(codes, torch.from_numpy(ys))
    assert a.summary() == pytest.approx(b.summary(), abs=1e-6)
    assert encoder.training  # the caller's mode is left alone
    with pytest.raises(InvalidValueError, match="images="):
        ground_truth_scores(encoder, torch.from_numpy(ys))
    with pytest.raises(InvalidValueError, match="only for an encoder"):
        ground_truth_scores(codes, torch.from_numpy(ys), images=images)


@given(st.integers(0, 10_000), st.lists(st.floats(0.01, 100.0), min_size=3, max_size=3))
def test_dci_lasso_unchanged_by_rescaling_latents(seed: int, scale: list[float]) -> None:
    """Codes are standardised before the lasso, so a per-latent affine map changes nothing."""
    mus, ys = _mixed(seed, 3, (3, 4), 300)
    z, g = torch.from_numpy(mus), torch.from_numpy(ys)
    a = dci(z, g)
    b = dci(z * torch.tensor(scale, dtype=torch.float64) + 5.0, g)
    torch.testing.assert_close(b.importance, a.importance, rtol=1e-6, atol=1e-8)
    assert b.informativeness == pytest.approx(a.informativeness, abs=1e-8)


def test_binned_continuous_factors_in_mig() -> None:
    _, factors = CausalScene(seed=0).sample(500)
    codes = factors[:, [1, 0, 2, 3, 4]] + 0.01 * torch.randn(500, 5)
    as_values = mig(codes, factors)  # every value its own class: entropy log N, gap ~ small
    binned = mig(codes, factors, factor_bins=20)
    assert binned.entropy.max() <= math.log(20) + 1e-9
    assert float(as_values.entropy[0]) == pytest.approx(math.log(500), abs=1e-9)  # the angle
    assert binned.score > as_values.score
