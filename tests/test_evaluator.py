from __future__ import annotations

import json
import math
import sys
import warnings

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from consistency import (
    AggregatePosterior,
    ConsistencyEvaluator,
    EmptySamplerError,
    ResponseModel,
    ShapeError,
    XBlock,
)
from consistency.testing import assert_identity_response_scores_one, assert_reports_close


def bank(
    n: int, rows: int = 400, seed: int = 0, scale: torch.Tensor | float = 1.0
) -> AggregatePosterior:
    g = torch.Generator().manual_seed(seed)
    q = AggregatePosterior(n, capacity=rows, dtype=torch.float64)
    q.update(torch.randn(rows, n, generator=g, dtype=torch.float64) * scale)
    return q


def evaluator(enc, dec, q, seed: int = 0, **kw) -> ConsistencyEvaluator:  # type: ignore[no-untyped-def]
    kw.setdefault("n_samples", 200)
    kw.setdefault("n_interventions", 4)
    if "batch_size" in kw:
        kw["max_batch"] = kw.pop("batch_size")
    xblock, modules = kw.pop("xblock", None), kw.pop("model", None)
    handle = ResponseModel(enc, dec, xblock=xblock, modules=[modules] if modules else [])
    return ConsistencyEvaluator(
        handle,
        q,
        generator=torch.Generator().manual_seed(seed),
        progress=False,
        **kw,
    )


@given(
    st.integers(2, 5),
    st.floats(0.1, 10.0),
    st.sampled_from(["posterior", "hybrid", "uniform"]),
    st.integers(0, 99),
)
def test_identity_response_scores(n: int, scale: float, mode: str, seed: int) -> None:
    torch.manual_seed(seed)
    q = bank(n, seed=seed, scale=scale)
    a = torch.randn(n, n + 2, dtype=torch.float64)
    pinv = torch.linalg.pinv(a)
    block = XBlock(n, 2, logit_init_std=1.0).double()
    report = evaluator(lambda x: x @ pinv, lambda z: z @ a, q, seed, xblock=block).evaluate(mode)
    assert_identity_response_scores_one(report, atol=1e-6)
    assert report.collapsed == []  # diagonal invariance 0: every dimension responds


@given(st.lists(st.floats(0.05, 20.0), min_size=3, max_size=3), st.integers(0, 99))
def test_scores_unchanged_by_rescaling_latents(c: list[float], seed: int) -> None:
    torch.manual_seed(seed)
    scale = torch.tensor(c, dtype=torch.float64)
    net_e = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    net_d = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 5)).double()
    data = torch.randn(300, 5, dtype=torch.float64)

    def scores(s: torch.Tensor):  # type: ignore[no-untyped-def]
        enc = lambda x: net_e(x) * s  # noqa: E731
        dec = lambda z: net_d(z / s)  # noqa: E731
        q = AggregatePosterior(3, capacity=300, dtype=torch.float64)
        with torch.no_grad():
            q.update(enc(data))
        return evaluator(enc, dec, q, seed).evaluate("hybrid")

    assert_reports_close(scores(torch.ones(3, dtype=torch.float64)), scores(scale), atol=1e-8)


def test_collapsed_dimension_is_reported() -> None:
    n, k = 4, 2
    q = bank(n)

    def enc(x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        out[:, k] = 0.3 * x[:, 0]  # ignores N_k, but still varies
        return out

    report = evaluator(enc, lambda z: z, q).evaluate()
    assert report.collapsed == [k]
    assert float(report.invariance[k, k]) > 0.99
    # the collapsed dimension's SCN is at most 0; the active mean leaves it out
    assert report.active == [0, 1, 3]
    assert float(report.self_consistency[k]) <= 0.0
    assert report.mean_self_consistency_active == pytest.approx(1.0, abs=1e-9)
    assert report.mean_self_consistency == pytest.approx(
        float(report.self_consistency.mean()), abs=1e-6
    )
    assert report.mean_self_consistency < report.mean_self_consistency_active
    assert "over the 3 active dims" in str(report)


def test_active_mean_is_nan_when_every_dimension_collapsed() -> None:
    q = bank(2)
    swap = lambda x: 0.3 * x.flip(1)  # noqa: E731  each coordinate ignores its own noise
    report = evaluator(swap, lambda z: z, q).evaluate()
    assert report.collapsed == [0, 1] and report.active == []
    assert math.isnan(report.mean_self_consistency_active)
    assert not math.isnan(report.mean_self_consistency)


def test_linear_mixing_matches_closed_form() -> None:
    n = 3
    q = bank(n, rows=4000)
    mix = torch.tensor([[1.0, 0.4, 0.0], [0.0, 1.0, -0.7], [0.5, 0.0, 1.0]], dtype=torch.float64)
    enc = lambda x: x @ mix.T  # R(N) = M N  # noqa: E731
    ev = evaluator(enc, lambda z: z, q, n_samples=4000, n_interventions=8)
    report = ev.evaluate()
    sigma = q.bank.std(0, unbiased=False)
    sigma_r = (q.bank @ mix.T).std(0, unbiased=False)
    expected = 1 - (mix.T.square() * sigma[:, None].square()) / sigma_r[None, :].square()  # [m, i]
    # estimator noise, measured over 20 generator seeds: s.d. ≤ 0.012 per entry, largest
    # |error| 0.026 (0.017 at this seed); 0.03 is the smallest round bound none of them exceeds
    assert torch.allclose(report.invariance.double(), expected, atol=0.03)


def test_mmd_independent_vs_correlated() -> None:
    g = torch.Generator().manual_seed(0)
    indep = AggregatePosterior(3, capacity=1000)
    indep.update(torch.randn(1000, 3, generator=g))
    x = torch.randn(1000, 1, generator=g)
    corr = AggregatePosterior(3, capacity=1000)
    corr.update(torch.cat([x, x + 0.05 * torch.randn(1000, 1, generator=g), -x], 1))
    ident = lambda z: z  # noqa: E731
    m_indep = evaluator(ident, ident, indep, n_samples=500).evaluate().mmd_hybrid
    m_corr = evaluator(ident, ident, corr, n_samples=500).evaluate().mmd_hybrid
    assert abs(m_indep) < 0.005
    assert m_corr > 0.03 and m_corr > 10 * abs(m_indep)


def test_chunking_matches_one_batch() -> None:
    q = bank(3)
    net = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    block = XBlock(3, 2, logit_init_std=1.0).double()
    big = evaluator(net, lambda z: z, q, batch_size=10_000, xblock=block).evaluate()
    small = evaluator(net, lambda z: z, q, batch_size=37, xblock=block).evaluate()
    assert_reports_close(big, small, atol=1e-10)


def test_restores_train_eval_state_and_uses_eval() -> None:
    enc = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
    dec = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    enc.train()
    dec.eval()
    dec[0].train()  # a mixed state must come back exactly
    seen: list[bool] = []
    q = AggregatePosterior(3)
    q.update(torch.randn(50, 3))

    def spy(x: torch.Tensor) -> torch.Tensor:
        seen.append(enc.training)
        return enc(x)

    ev = ConsistencyEvaluator(
        ResponseModel(spy, dec, modules=[enc]), q, n_samples=20, n_interventions=2, progress=False
    )
    ev.evaluate()
    assert seen and not any(seen)
    assert enc.training and enc[1].training and not dec.training and dec[0].training


def test_authors_convention_hand_computed() -> None:
    """A 4-row bank scored on all of its rows (posterior samples are distinct rows, so the
    prior is the bank itself, reordered): R = N + 0.5 has SCN_i = 1 - 0.5 / std_i of the
    response (unbiased); R = N / 2 gives 1 - E|N_i| / std(N_i) < 0, clamped to 0; a linear R
    has INV[m, i] = 1 - |A[m, i]| s / (s + 1e-4) / std R_i, here with s >> 1e-4."""
    q = AggregatePosterior(2, capacity=4, dtype=torch.float64)
    q.update(torch.tensor([[0.0, 0.0], [1.0, 2.0], [2.0, 4.0], [3.0, 6.0]], dtype=torch.float64))
    kw = dict(n_samples=4, scn_samples=4, convention="authors")
    shifted = evaluator(lambda x: x + 0.5, lambda z: z, q, **kw).self_consistency_table(
        ("posterior",)
    )
    std = torch.tensor([(5 / 3) ** 0.5, 2 * (5 / 3) ** 0.5], dtype=torch.float64)
    assert torch.allclose(shifted.values[0].double(), 1 - 0.5 / std, atol=1e-6)
    halved = evaluator(lambda x: 0.5 * x, lambda z: z, q, **kw).evaluate("posterior")
    assert torch.equal(halved.self_consistency, torch.zeros(2))
    # the identity: SCN 1, INV 1 off the diagonal, 1 - s / (s + eps) / std on it
    same = evaluator(lambda x: x, lambda z: z, bank(2, rows=1000), convention="authors")
    report = same.evaluate()
    assert torch.equal(report.self_consistency, torch.ones(2))
    assert torch.allclose(report.invariance[0, 1], torch.tensor(1.0))
    assert bool((report.invariance.diagonal() < 0.5).all())
    mix = torch.tensor([[1.0, 0.3], [0.0, 1.0]], dtype=torch.float64)
    seen: list[torch.Tensor] = []

    def generate(z: torch.Tensor) -> torch.Tensor:
        seen.append(z.clone())
        return z

    lin = evaluator(lambda x: x @ mix, generate, bank(2, rows=1000), convention="authors")
    inv = lin.evaluate().invariance.double()
    prior = seen[0]  # the first pass is R of the (hybrid) prior samples
    std_r = (prior @ mix).std(0)
    assert abs(float(inv[0, 1]) - (1 - 0.3 / float(std_r[1]))) < 1e-3
    assert abs(float(inv[1, 0]) - 1.0) < 1e-12


def test_authors_self_consistency_is_one_step_and_levels_iterate() -> None:
    """R = 0.9 N on all 1000 rows of the bank: the Table 2 score is
    1 - 0.1 E|N| / (0.9 std N) exactly (one step, the response's unbiased std); the levelled
    SCN at level L is 1 - (1 - 0.9^L) E|N|, unnormalised."""
    q = bank(2, rows=1000)
    ev = evaluator(
        lambda x: 0.9 * x, lambda z: z, q, n_samples=50, scn_samples=1000, convention="authors"
    )
    table = ev.self_consistency_table(("posterior",)).values[0].double()
    mean_abs, std = q.bank.abs().mean(0), q.bank.std(0)
    assert torch.allclose(table, 1 - 0.1 * mean_abs / (0.9 * std), atol=1e-6)
    assert torch.allclose(
        ev.evaluate("posterior").self_consistency.double(), 1 - 0.1 * mean_abs / (0.9 * std),
        atol=1e-6,
    )  # fmt: skip
    levels = ev.self_consistency_levels("posterior", levels=(10, 1, 5))
    assert list(levels) == [1, 5, 10]
    for level, value in levels.items():
        expected = float((1 - (1 - 0.9**level) * mean_abs).mean())
        assert value == pytest.approx(expected, abs=1e-9)


def test_zero_variance_is_nan_with_warning() -> None:
    q = bank(3)
    enc = lambda x: x * torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)  # noqa: E731
    with pytest.warns(RuntimeWarning, match=r"response coordinate\(s\) \[1\] have zero variance"):
        report = evaluator(enc, lambda z: z, q).evaluate()
    assert math.isnan(float(report.invariance[0, 1]))
    assert json.loads(json.dumps(report.to_dict()))["invariance"][0][1] is None


def test_report_table_dict_and_save(tmp_path) -> None:  # type: ignore[no-untyped-def]
    q = bank(3)
    block = XBlock(3, logit_init_mean=0.0)
    with torch.no_grad():
        block.gate_logits.copy_(torch.tensor([0.5, -0.25, 0.0]))  # one decision changed
    report = evaluator(lambda x: x, lambda z: z, q, xblock=block.double()).evaluate("uniform")
    text = str(report)
    assert "mean off-diagonal invariance" in text and "UNDECIDED" in text
    assert "moved 0.250 on average (max 0.500); 1 of 3 edge decisions changed" in text
    d = report.to_dict()
    assert d["mode"] == "uniform" and len(d["invariance"]) == 3
    assert d["edge_density"] == pytest.approx(1 / 3)
    assert d["gate_movement"] == {
        "mean_shift": pytest.approx(0.25),
        "max_shift": 0.5,
        "flipped": 1,
        "possible": 3,
    }
    from consistency import plots

    report.save(tmp_path)
    plots.save_report_figures(report, tmp_path)
    assert json.loads((tmp_path / "report.json").read_text())["n_samples"] == 200
    assert {p.name for p in tmp_path.glob("*.png")} == {
        "invariance_uniform.png",
        "equivariance_uniform.png",
        "adjacency_uniform.png",
    }


def test_self_consistency_table_and_traversals() -> None:
    q = bank(3)
    ev = evaluator(lambda x: 0.5 * x, lambda z: z, q)
    table = ev.self_consistency_table()
    assert table.modes == ("posterior", "hybrid", "uniform") and table.values.shape == (3, 3)
    # R = N / 2: spec SCN 1 - E[(N/2)^2] / var(N) = 0.75 in every mode whose samples have mean
    # ~0; over 20 generator seeds the per-mode s.d. is <= 0.0022 (largest |error| 0.010, uniform)
    means = table.means()
    assert all(abs(v - 0.75) < 0.015 for v in means.values()), means
    assert "hybrid" in str(table)
    err = ev.traversal_responses(1, steps=7)
    assert err.shape == (64, 7, 3)
    grid = ev.traversal_grid(1, 7)
    assert torch.allclose(grid[[0, -1]], torch.stack([q.bank[:, 1].min(), q.bank[:, 1].max()]))
    assert torch.allclose(err[:, :, 1], -0.5 * grid[None, :].expand(64, 7))  # R(Ñ)_1 - Ñ_1 = -v/2


def test_traversal_grid_bounds_and_defaults() -> None:
    """Every dimension index in [0, n) is accepted (and no other), at least 2 steps; the grid is
    the bank's quantiles in the bank's dtype; traversal_responses honours n_samples, defaults
    to 20 steps, and is repeatable with a seeded generator."""
    q = bank(3)
    ev = evaluator(lambda x: 0.5 * x, lambda z: z, q)
    for dim in (0, 2):
        grid = ev.traversal_grid(dim, 2)
        assert grid.dtype == q.bank.dtype == torch.float64
        assert torch.equal(grid, torch.stack([q.bank[:, dim].min(), q.bank[:, dim].max()]))
    for dim in (-1, 3):
        with pytest.raises(ValueError, match=r"dim must lie in \[0, 3\); got " + str(dim)):
            ev.traversal_grid(dim)
    with pytest.raises(ValueError, match="steps must be >= 2"):
        ev.traversal_grid(0, 1)
    assert ev.traversal_responses(0).shape == (64, 20, 3)
    assert ev.traversal_responses(0, steps=3, n_samples=5).shape == (5, 3, 3)
    # R = N / 2 everywhere: the error on untouched coordinates is -N_i / 2, so it shows which
    # prior rows were drawn: the same seed draws the same rows
    a = evaluator(lambda x: 0.5 * x, lambda z: z, q, seed=3).traversal_responses(0, 3, 5)
    b = evaluator(lambda x: 0.5 * x, lambda z: z, q, seed=3).traversal_responses(0, 3, 5)
    c = evaluator(lambda x: 0.5 * x, lambda z: z, q, seed=4).traversal_responses(0, 3, 5)
    assert torch.equal(a, b) and not torch.equal(a, c)
    rows = -2 * a[:, 0, 1:]  # the drawn prior rows' coordinates 1 and 2: whole bank rows
    assert all(bool((q.bank[:, 1:] == r).all(1).any()) for r in rows)


def test_errors() -> None:
    with pytest.raises(EmptySamplerError, match="empty AggregatePosterior"):
        ConsistencyEvaluator(ResponseModel(lambda x: x, lambda z: z), AggregatePosterior(3))
    q = bank(3)
    with pytest.raises(ValueError, match="n_samples must be >= 2"):
        ConsistencyEvaluator(ResponseModel(lambda x: x, lambda z: z), q, n_samples=1)
    ev = evaluator(lambda x: x, lambda z: z, q)
    with pytest.raises(ValueError, match="mode must be one of"):
        ev.evaluate("gaussian")
    bad = evaluator(nn.Linear(5, 3).double(), lambda z: z, q)
    with pytest.raises(ShapeError, match=r"encoder failed on input of shape \(\d+, 3\)"):
        bad.evaluate()


def test_core_does_not_import_optional_layers() -> None:
    import subprocess

    code = (
        "import sys, consistency, consistency.metrics; "
        "bad = [m for m in ('consistency.plots', 'consistency.models', 'consistency.data', 'consistency.train') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_same_generator_seed_same_report() -> None:
    q = bank(3)
    net = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    a = evaluator(net, lambda z: z, q, seed=5).evaluate("hybrid")
    torch.manual_seed(123)  # the global RNG must not matter
    b = evaluator(net, lambda z: z, q, seed=5).evaluate("hybrid")
    assert_reports_close(a, b, atol=0)
    assert a.mmd_hybrid == b.mmd_hybrid


def test_evaluator_takes_the_model_and_checks_the_xblock_at_first_use() -> None:
    import warnings

    q = bank(3)
    block = XBlock(3).double()

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder, self.latent, self.decoder = nn.Identity(), block, nn.Identity()

    model = Model()
    ev = ConsistencyEvaluator(model, q, n_samples=8, progress=False)
    assert ev.xblock is block and model in ev.model.modules
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ev.evaluate()
    skipping = ConsistencyEvaluator(
        ResponseModel(lambda x: x, lambda z: z, xblock=block), q, n_samples=8, progress=False
    )
    with pytest.warns(UserWarning, match="generate does not run the model's XBlock"):
        skipping.evaluate()


def test_self_consistency_table_modes_and_generator() -> None:
    """Each mode draws its own prior samples (a mixing response scores differently on hybrids),
    a seeded generator repeats the table; spec SCN of R = N / 2 is 0.75."""
    q = bank(2, rows=1000)
    mix = torch.tensor([[1.0, 0.6], [0.0, 0.8]], dtype=torch.float64)
    table = evaluator(lambda x: x @ mix, lambda z: z, q, seed=1).self_consistency_table()
    again = evaluator(lambda x: x @ mix, lambda z: z, q, seed=1).self_consistency_table()
    assert torch.equal(table.values, again.values)
    assert not torch.equal(table.values[0], table.values[1])  # posterior vs hybrid rows differ
    spec = evaluator(lambda x: 0.5 * x, lambda z: z, q, n_samples=1000, seed=2)
    # over 20 generator seeds the estimate's s.d. is 0.0007 (largest |error| 0.003) -> 0.005
    assert torch.allclose(
        spec.self_consistency_table(("posterior",)).values[0].double(),
        torch.full((2,), 0.75, dtype=torch.float64),
        atol=0.005,
    )


def test_progress_bar_counts_intervention_blocks(capsys) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("tqdm")
    q = bank(3)
    ConsistencyEvaluator(
        ResponseModel(lambda x: x, lambda z: z), q, n_samples=20, n_interventions=2, progress=True
    ).evaluate("hybrid")
    err = capsys.readouterr().err
    assert "consistency (hybrid)" in err and "/6 " in err  # total: n * K = 6 blocks
    ConsistencyEvaluator(
        ResponseModel(lambda x: x, lambda z: z), q, n_samples=20, n_interventions=2, progress=False
    ).evaluate()
    assert capsys.readouterr().err == ""


def test_report_summaries_and_configuration_fields() -> None:
    """The means are over the off-diagonal invariance, all equivariance entries and all SCN
    entries; the report carries the evaluator's configuration; n = 2 has a mean invariance."""
    q = bank(3)
    net = nn.Sequential(nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    block = XBlock(3, 2, logit_init_std=1.0).double()
    report = evaluator(
        net, block, q, xblock=block, n_interventions=3, collapse_threshold=0.7
    ).evaluate()
    off = ~torch.eye(3, dtype=torch.bool)
    assert report.mean_invariance == pytest.approx(float(report.invariance[off].double().mean()))
    assert report.mean_invariance != pytest.approx(float(report.invariance.double().mean()))
    assert report.equivariance is not None
    assert report.mean_equivariance == pytest.approx(float(report.equivariance.double().mean()))
    assert report.mean_self_consistency == pytest.approx(
        float(report.self_consistency.double().mean())
    )
    assert (report.convention, report.collapse_threshold) == ("spec", 0.7)
    assert (report.n_samples, report.n_interventions) == (200, 3)
    two = evaluator(
        lambda x: x @ torch.tensor([[1.0, 0.5], [0.0, 1.0]]).double(), lambda z: z, bank(2)
    )
    assert math.isfinite(two.evaluate().mean_invariance)


def test_collapse_is_strictly_above_the_threshold() -> None:
    """The identity response has diagonal invariance exactly 0: a threshold of 0 marks nothing."""
    report = evaluator(lambda x: x, lambda z: z, bank(3), collapse_threshold=0.0).evaluate()
    assert torch.equal(report.invariance.diagonal(), torch.zeros(3))
    assert report.collapsed == []


def test_constructor_defaults_bounds_and_messages() -> None:
    q = bank(3)
    ev = ConsistencyEvaluator(ResponseModel(lambda x: x, lambda z: z), q)
    assert (ev.n_samples, ev.n_interventions, ev.max_batch, ev.progress) == (1000, 10, 512, True)
    assert ev.model.max_batch == 512
    assert evaluator(lambda x: x, lambda z: z, q, n_samples=2).evaluate().n_samples == 2
    with pytest.raises(
        ValueError,
        match=r"^n_samples must be >= 2 \(standard deviations need two samples\); got 1$",
    ):
        evaluator(lambda x: x, lambda z: z, q, n_samples=1)
    with pytest.raises(TypeError, match="n_samples"):
        evaluator(lambda x: x, lambda z: z, q, n_samples=2.5)
    with pytest.raises(ValueError, match=r"^n_interventions must be >= 1; got 0$"):
        evaluator(lambda x: x, lambda z: z, q, n_interventions=0)
    with pytest.raises(ValueError, match=r"^max_batch must be >= 1; got 0$"):
        evaluator(lambda x: x, lambda z: z, q, batch_size=0)
    block = XBlock(4)
    with pytest.raises(ValueError, match=r"^xblock has n = 4 units but the sampler has dim = 3$"):
        evaluator(lambda x: x, block, q, xblock=block)
    with pytest.raises(
        EmptySamplerError,
        match=r"^cannot build a ConsistencyEvaluator on an empty AggregatePosterior: call "
        r"sampler\.update\(encoder_means\) over the data first$",
    ):
        ConsistencyEvaluator(ResponseModel(lambda x: x, lambda z: z), AggregatePosterior(3))


def test_networks_never_see_more_than_batch_size_rows() -> None:
    sizes: list[int] = []

    def encoder(x: torch.Tensor) -> torch.Tensor:
        sizes.append(x.shape[0])
        return x

    evaluator(
        encoder, lambda z: z, bank(3), n_samples=20, n_interventions=2, batch_size=7
    ).evaluate()
    assert max(sizes) == 7 and sum(sizes) == 20 + 20 * 3 * 2  # reference + intervened rows


def _degenerate_warnings() -> list[warnings.WarningMessage]:
    q = AggregatePosterior(3, dtype=torch.float64)
    q.update(torch.randn(50, 3, dtype=torch.float64) * torch.tensor([1.0, 0.0, 1.0]).double())
    with pytest.warns(RuntimeWarning) as caught:
        evaluator(lambda x: x, lambda z: z, q).evaluate()
    return list(caught)


def test_degenerate_warning_names_the_coordinates() -> None:
    messages = [str(w.message) for w in _degenerate_warnings()]
    assert (
        "prior coordinate(s) [1] have zero variance over the samples: their scores are reported as NaN"
        in messages
    )


def test_degenerate_warning_points_at_the_caller() -> None:
    # (deselected in the mutation run: mutmut's trampolines add stack frames)
    caught = _degenerate_warnings()
    assert caught and all(w.filename == __file__ for w in caught)


def test_self_consistency_table_draws_each_mode() -> None:
    """Bank rows (x, x); R(N) = the mean of the coordinates, on both: exact on posterior rows
    (SCN 1), wrong on hybrids, whose coordinates differ."""
    x = torch.randn(500, 1, dtype=torch.float64)
    q = AggregatePosterior(2, capacity=500, dtype=torch.float64)
    q.update(torch.cat([x, x], 1))
    average = lambda n: n.mean(1, keepdim=True).expand(-1, 2)  # noqa: E731
    table = evaluator(average, lambda z: z, q).self_consistency_table(("posterior", "hybrid"))
    assert torch.allclose(table.values[0], torch.ones(2), atol=1e-6)
    assert bool((table.values[1] < 0.9).all())


def test_two_prior_samples_still_give_a_noise_mmd() -> None:
    report = evaluator(lambda x: x, lambda z: z, bank(3), n_samples=2).evaluate()
    assert math.isfinite(report.mmd_hybrid)


def test_self_consistency_table_sends_all_modes_through_the_networks_together() -> None:
    sizes: list[int] = []

    def encoder(x: torch.Tensor) -> torch.Tensor:
        sizes.append(x.shape[0])
        return 0.5 * x

    evaluator(encoder, lambda z: z, bank(3), n_samples=20).self_consistency_table()
    assert sizes == [60]  # 3 modes x 20 prior samples, one pass (batch_size 512)
    sizes.clear()
    evaluator(encoder, lambda z: z, bank(3), n_samples=20, batch_size=25).self_consistency_table()
    assert sizes == [25, 25, 10]  # chunked by batch_size, not by mode
