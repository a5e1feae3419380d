"""SAP, modularity / explicitness, the unsupervised scores, the FactorVAE and BetaVAE scores,
MCC and probe R²: against code no one here wrote (disent 0.8.0's own files, executed as they
are; disentanglement_lib transcribed literally where disent lacks the metric; scipy), and the
laws each definition has (perfect codes at the top, noise near the bottom, invariances)."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from consistency import ConsistencyError
from consistency.metrics import (
    beta_vae_score,
    correlation_matrix,
    factor_vae_score,
    ground_truth_scores,
    mcc,
    modularity_explicitness,
    probe_r2,
    sap,
    unsupervised_scores,
)

from .reference import (
    DisentStandIn,
    beta_vae_transcribed,
    disent_metrics,
    modularity_explicitness_transcribed,
)
from .sources import MixedFactors

DISENT = disent_metrics()
needs_disent = pytest.mark.skipif(
    DISENT is None,
    reason="disent (pip install --no-deps disent==0.8.0) and scikit-learn are needed for the "
    "cross-checks against disent",
)


def structured(seed: int, n_rows: int = 600, noise: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Discrete factors (F = 3, five levels) and a code that mixes them imperfectly plus a
    pure-noise latent: scores land inside their ranges, not at the ends."""
    rng = np.random.default_rng(seed)
    factors = rng.integers(0, 5, (n_rows, 3)).astype(np.float64)
    mix = np.array([[1.0, 0.3, 0.0], [0.0, 1.0, 0.5], [0.2, 0.0, 1.0], [0.0, 0.0, 0.0]])
    codes = factors @ mix.T + noise * rng.standard_normal((n_rows, 4))
    return codes, factors


# ------------------------------------------------------------------------------- deterministic
@needs_disent
@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_sap_agrees_with_disent(continuous: bool, seed: int) -> None:
    """disent's ``_compute_sap`` (LinearSVC per latent and factor, or squared correlations) on
    the same training and test split."""
    assert DISENT is not None
    codes, factors = structured(seed)
    tr, te = slice(0, 400), slice(400, None)
    ours = sap(
        torch.from_numpy(codes[tr]), torch.from_numpy(factors[tr]),
        test_codes=torch.from_numpy(codes[te]), test_factors=torch.from_numpy(factors[te]),
        continuous=continuous,
    )  # fmt: skip
    ref = DISENT["_sap"]._compute_sap(
        codes[tr].T, factors[tr].T, codes[te].T, factors[te].T, continuous
    )
    assert ours.score == pytest.approx(ref["sap.score"], abs=1e-9)
    assert 0.05 < ours.score < 0.95


@needs_disent
@pytest.mark.parametrize("seed", [0, 3])
def test_unsupervised_scores_agree_with_disent(seed: int) -> None:
    """disent's ``metric_unsupervised`` run as it is, on a stand-in data set whose observations
    are the codes (identity representation)."""
    assert DISENT is not None
    codes, factors = structured(seed, 800)
    ref = DISENT["_unsupervised"].metric_unsupervised(
        DisentStandIn(codes, factors), lambda x: x, num_train=800, batch_size=16
    )
    ours = unsupervised_scores(torch.from_numpy(codes))
    assert ours.gaussian_total_correlation == pytest.approx(ref["unsup.gauss_total_corr"], rel=1e-9)
    assert ours.gaussian_wasserstein_correlation == pytest.approx(
        ref["unsup.gauss_wasser_corr"], rel=1e-7
    )
    assert ours.gaussian_wasserstein_correlation_norm == pytest.approx(
        ref["unsup.gauss_wasser_corr_norm"], rel=1e-7
    )
    assert ours.mutual_information == pytest.approx(ref["unsup.mi_score"], abs=1e-12)


@pytest.mark.parametrize("seed", [0, 2])
def test_modularity_explicitness_agree_with_disentanglement_lib_transcribed(seed: int) -> None:
    pytest.importorskip("sklearn")
    codes, factors = structured(seed)
    tr, te = slice(0, 400), slice(400, None)
    ours = modularity_explicitness(
        torch.from_numpy(codes[tr]), torch.from_numpy(factors[tr]),
        test_codes=torch.from_numpy(codes[te]), test_factors=torch.from_numpy(factors[te]),
    )  # fmt: skip
    ref = modularity_explicitness_transcribed(
        codes[tr].T, factors[tr].T.astype(np.int64), codes[te].T, factors[te].T.astype(np.int64)
    )
    assert ours.modularity == pytest.approx(ref["modularity_score"], abs=1e-9)
    assert ours.explicitness == pytest.approx(ref["explicitness_score_test"], abs=1e-9)
    assert ours.explicitness_train == pytest.approx(ref["explicitness_score_train"], abs=1e-9)
    assert 0.3 < ours.modularity < 0.99


def test_mcc_against_scipy_and_brute_force_matching() -> None:
    """Correlations equal scipy.stats.pearsonr / spearmanr (ties included); the Hungarian
    matching equals the best of all permutations."""
    import itertools

    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 4, (300, 3)).astype(np.float64)  # ties for the ranks
    codes = np.stack(
        [np.exp(factors[:, 2]) + rng.normal(0, 0.5, 300), -factors[:, 0] + rng.normal(0, 1, 300),
         rng.normal(size=300), factors[:, 1] ** 3 + rng.normal(0, 2, 300)], 1,
    )  # fmt: skip
    for method, ref_fn in (("pearson", scipy_stats.pearsonr), ("spearman", scipy_stats.spearmanr)):
        corr = correlation_matrix(torch.from_numpy(codes), torch.from_numpy(factors), method)
        for j in range(4):
            for k in range(3):
                ref = ref_fn(codes[:, j], factors[:, k])[0]
                assert float(corr[j, k]) == pytest.approx(ref, abs=1e-12)
        result = mcc(torch.from_numpy(codes), torch.from_numpy(factors), method=method)
        best = max(
            sum(abs(float(corr[p[k], k])) for k in range(3)) / 3
            for p in itertools.permutations(range(4), 3)
        )
        assert result.score == pytest.approx(best, abs=1e-12)
        assert sorted(result.matching[:, 1].tolist()) == [0, 1, 2]


def test_probe_r2_linear_is_least_squares_and_nonlinear_reads_a_curved_code() -> None:
    g = torch.rand(1200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    codes = torch.stack([torch.exp(3 * g[:, 0]), torch.tanh(4 * g[:, 1] - 2)], 1)
    result = probe_r2(codes, g, test_fraction=0.25)
    assert bool((result.nonlinear > 0.99).all()) and bool((result.linear < 0.97).all())
    exact = probe_r2(3 * g @ torch.tensor([[1.0, 2.0], [-1.0, 0.5]], dtype=torch.float64) + 1, g)
    assert exact.linear_mean == pytest.approx(1.0, abs=1e-12)


# ------------------------------------------------------------------------------- randomised
GRID_MIX = np.array([[1.0, 0.4, 0.0], [0.0, 1.0, 0.7], [0.5, 0.0, 1.0], [0.3, 0.3, 0.3]])


def Grid(seed: int, noise: float = 0.6) -> MixedFactors:
    """Three independent five-level factors; the observation is a fixed linear mixing of them
    (four features) plus noise, so that a code (the identity) is informative but not perfect."""
    return MixedFactors((5, 5, 5), GRID_MIX.T, noise=noise, seed=seed, names=("a", "b", "c"))


def _spread(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values)


@needs_disent
def test_factor_vae_score_within_the_spread_of_disent_over_seeds() -> None:
    """disent's ``metric_factor_vae`` run as it is (its random choices from np.random) on the
    same source, 6 seeds each; disent prunes no latent, so neither do we here. The two means
    must agree within twice the larger standard deviation over seeds (measured: about 0.02)."""
    assert DISENT is not None
    sizes = dict(batch_size=32, num_train=150, num_eval=100, num_variance_estimate=1000)
    ref, ours = [], []
    for seed in range(6):
        np.random.seed(seed)
        source = Grid(100 + seed, noise=1.5)
        out = DISENT["_factor_vae"].metric_factor_vae(
            DisentStandIn(source=source), lambda x: np.asarray(x), **sizes
        )
        ref.append(out["factor_vae.eval_accuracy"])
        score = factor_vae_score(
            lambda x: x, Grid(200 + seed, noise=1.5), seed=seed, prune_threshold=0.0, **sizes
        )
        ours.append(score.eval_accuracy)
    (ref_mean, ref_sd), (our_mean, our_sd) = _spread(ref), _spread(ours)
    assert 0.3 < ref_mean < 0.97
    assert abs(our_mean - ref_mean) <= 2 * max(ref_sd, our_sd, 0.01), (ref, ours)


def test_beta_vae_score_within_the_spread_of_disentanglement_lib_transcribed() -> None:
    pytest.importorskip("sklearn")
    sizes = dict(batch_size=16, num_train=200, num_eval=100)
    ref, ours = [], []
    for seed in range(5):
        out = beta_vae_transcribed(
            Grid(300 + seed, noise=1.5),
            lambda x: np.asarray(x),
            np.random.RandomState(seed),
            **sizes,
        )
        ref.append(out["eval_accuracy"])
        ours.append(
            beta_vae_score(
                lambda x: x, Grid(400 + seed, noise=1.5), seed=seed, **sizes
            ).eval_accuracy
        )
    (ref_mean, ref_sd), (our_mean, our_sd) = _spread(ref), _spread(ours)
    assert 0.3 < ref_mean < 0.99
    assert abs(our_mean - ref_mean) <= 2 * max(ref_sd, our_sd, 0.01), (ref, ours)


# ------------------------------------------------------------------------------- laws
def _perfect(seed: int, scales: list[float], perm: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.cartesian_prod(torch.arange(5.0), torch.arange(4.0), torch.arange(3.0))
    g = g.repeat(4, 1).double()
    z = g[:, perm] * torch.tensor(scales, dtype=torch.float64)
    return z, g


@settings(max_examples=8)
@given(
    st.permutations([0, 1, 2]),
    st.lists(st.floats(0.1, 10.0), min_size=3, max_size=3),
    st.integers(0, 99),
)
def test_a_permuted_rescaled_perfect_code_tops_every_metric(
    perm: list[int], scales: list[float], seed: int
) -> None:
    pytest.importorskip("sklearn")
    z, g = _perfect(seed, scales, perm)
    assert sap(z, g, continuous=True).score == pytest.approx(1.0, abs=1e-9)
    # (SAP's classifier form is neither at 1 for a perfect code nor scale-invariant: a
    # one-feature LinearSVC(C=0.01) cannot separate the middle classes of a five-level factor,
    # and its penalty depends on the latent's scale; disentanglement_lib's form, kept)
    me = modularity_explicitness(z, g, seed=seed)
    # modularity on the 2/3 training split: a perfect latent's MI with the other factors is a
    # finite-sample 1e-4, not 0
    assert me.modularity == pytest.approx(1.0, abs=1e-3) and me.explicitness > 0.99
    assert mcc(z, g).score == pytest.approx(1.0, abs=1e-9)
    assert mcc(z, g, method="spearman").score == pytest.approx(1.0, abs=1e-9)
    assert unsupervised_scores(z).gaussian_total_correlation == pytest.approx(0.0, abs=1e-9)


def test_perfect_codes_top_the_randomised_scores_and_noise_sits_at_chance() -> None:
    pytest.importorskip("sklearn")
    sizes = dict(batch_size=16, num_train=120, num_eval=60)
    perfect = Grid(0, noise=0.0)
    perfect.weights = (np.eye(3)[[2, 0, 1]] * 3.0).T  # a permuted, rescaled copy of the factors
    assert (
        factor_vae_score(lambda x: x, perfect, num_variance_estimate=300, **sizes).eval_accuracy
        == 1.0
    )
    assert beta_vae_score(lambda x: x, perfect, **sizes).eval_accuracy == 1.0
    noise = Grid(1)
    noise.weights = np.zeros((3, 4))
    noise.noise = 1.0
    fv = factor_vae_score(lambda x: x, noise, num_variance_estimate=300, **sizes)
    assert fv.eval_accuracy < 0.6  # chance is 1/3
    codes, factors = (
        torch.randn(900, 4, dtype=torch.float64),
        torch.randint(0, 5, (900, 3)).double(),
    )
    assert sap(codes, factors, continuous=True).score < 0.02
    assert mcc(codes, factors).score < 0.15
    assert modularity_explicitness(codes, factors).explicitness < 0.6


@settings(max_examples=6)
@given(st.lists(st.floats(0.2, 5.0), min_size=4, max_size=4), st.permutations([0, 1, 2, 3]))
def test_rescaling_and_permuting_latents_leave_the_scores(
    scales: list[float], perm: list[int]
) -> None:
    """Per-latent positive rescaling and permutation of the latents: SAP, modularity,
    explicitness, MCC and the Gaussian total correlation do not move."""
    pytest.importorskip("sklearn")
    codes, factors = structured(7)
    z, g = torch.from_numpy(codes), torch.from_numpy(factors)
    moved = z[:, perm] * torch.tensor(scales, dtype=torch.float64)
    for fn in (
        lambda c: sap(c, g, continuous=True).score,
        lambda c: modularity_explicitness(c, g).modularity,
        lambda c: modularity_explicitness(c, g).explicitness,
        lambda c: mcc(c, g).score,
        lambda c: unsupervised_scores(c).gaussian_total_correlation,
        lambda c: unsupervised_scores(c).mutual_information,
    ):
        assert fn(moved) == pytest.approx(fn(z), abs=1e-6)


# ------------------------------------------------------------------------------- the one call
def test_ground_truth_scores_chooses_metrics_by_name_and_records_versions() -> None:
    pytest.importorskip("sklearn")
    import sklearn

    codes, factors = structured(1)
    z, g = torch.from_numpy(codes), torch.from_numpy(factors)
    scores = ground_truth_scores(z, g, metrics=("sap", "mcc", "unsupervised", "r2", "modularity"))
    summary = scores.summary()
    assert set(summary) == {
        "sap", "mcc", "mcc_spearman", "gaussian_total_correlation",
        "gaussian_wasserstein_correlation_norm", "mutual_information", "r2_linear",
        "r2_nonlinear", "modularity", "explicitness",
    }  # fmt: skip
    assert summary["sap"] == sap(z, g).score and scores.irs is None
    assert scores.versions["numpy"] == np.__version__
    assert scores.versions["scikit-learn"] == sklearn.__version__
    grid = Grid(5)
    both = ground_truth_scores(
        lambda x: x, g, images=grid.render(factors), metrics=("factor_vae", "beta_vae"),
        source=grid, source_kwargs=dict(batch_size=8, num_train=40, num_eval=20),
    )  # fmt: skip
    assert 0 <= both.summary()["factor_vae"] <= 1 and 0 <= both.summary()["beta_vae"] <= 1
    with pytest.raises(ConsistencyError, match="unknown metric"):
        ground_truth_scores(z, g, metrics=("sap", "hsic"))
    with pytest.raises(ConsistencyError, match="source="):
        ground_truth_scores(z, g, metrics=("factor_vae",))
    with pytest.raises(ConsistencyError, match="render"):
        factor_vae_score(lambda x: x, object())
    with pytest.raises(ConsistencyError, match="at least 2 latents"):
        sap(z[:, :1], g)
