"""Speed of the ground-truth metrics: 10,000 codes × 10 latents × 5 factors, ours against disent's.

    python benchmarks/bench_metrics.py [--codes 10000] [--rounds 3] [--no-gbt]

Codes are a noisy nonlinear mixture of five discrete factors with the shapes data set's level
counts (3, 4, 8, 8, 8). Each metric runs ``--rounds`` times, interleaved with a reference
implementation (disent's MIG and gradient-boosted DCI; disentanglement_lib's numpy IRS), and the
median is reported with the ratio to the reference measured in the same run. disent is loaded as the cross-check tests load it
(``tests/metrics/reference.py``); without it the disent columns are empty. The latent response
matrix needs networks: it is timed with linear 784 <-> 10 ones (what the metric itself costs) and
with the small conv AE of the data sets' preset (what a user's model costs, 1,000 samples).
Results go to stdout and ``benchmarks/results/metrics_speed.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from consistency.metrics import (  # noqa: E402
    beta_vae_score,
    dci,
    factor_vae_score,
    irs,
    latent_response_matrix,
    mcc,
    mig,
    modularity_explicitness,
    probe_r2,
    sap,
    unsupervised_scores,
)
from tests.metrics.reference import (  # noqa: E402
    DisentStandIn,
    beta_vae_transcribed,
    disent_metrics,
    irs_published,
    modularity_explicitness_transcribed,
)
from tests.metrics.sources import MixedFactors  # noqa: E402


def Levels(mixing: np.ndarray, seed: int = 0) -> MixedFactors:
    """Factors with the shapes' level counts, "rendered" as the benchmark's code mixture itself
    (the FactorVAE / BetaVAE timings measure the metric, not a renderer or an encoder)."""
    return MixedFactors(LEVELS, mixing / 5, noise=0.3, seed=seed, squash=np.tanh)


LEVELS = (3, 4, 8, 8, 8)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--codes", type=int, default=10_000)
    parser.add_argument("--latents", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-gbt", action="store_true", help="skip the (minutes-long) GBT DCI")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "metrics_speed.md"))
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    ys = np.stack([rng.integers(0, k, args.codes) for k in LEVELS], 1)
    mixing = rng.normal(size=(len(LEVELS), args.latents))
    mus = np.tanh(ys @ mixing / 5) + 0.3 * rng.normal(size=(args.codes, args.latents))
    z, g = torch.from_numpy(mus), torch.from_numpy(ys)
    split = int(0.8 * args.codes)
    ref = disent_metrics()

    cases: dict[str, tuple[Callable[[], object], Callable[[], object] | None]] = {
        "IRS": (lambda: irs(z, g), lambda: irs_published(ys.T.astype(float), mus.T)),
        "MIG": (
            lambda: mig(z, g),
            (lambda: ref["_mig"]._compute_mig(mus.T, ys.T)) if ref else None,
        ),
        "DCI (lasso)": (lambda: dci(z, g), None),
    }
    if not args.no_gbt:
        cases["DCI (gbt)"] = (
            lambda: dci(
                z[:split], g[:split], test_codes=z[split:], test_factors=g[split:], importance="gbt"
            ),
            (
                lambda: ref["_dci"]._compute_dci(
                    mus[:split].T, ys[:split].T, mus[split:].T, ys[split:].T
                )
            )
            if ref
            else None,
        )
    te = slice(split, None)
    tr = slice(0, split)
    zt, gt = z[tr], g[tr]
    zs, gs = z[te], g[te]
    cases["SAP (LinearSVC per pair)"] = (
        lambda: sap(zt, gt, test_codes=zs, test_factors=gs),
        (lambda: ref["_sap"]._compute_sap(mus[tr].T, ys[tr].T, mus[te].T, ys[te].T, False))
        if ref
        else None,
    )
    cases["SAP (continuous)"] = (
        lambda: sap(z, g, continuous=True),
        (lambda: ref["_sap"]._compute_sap(mus.T, ys.T, mus.T, ys.T, True)) if ref else None,
    )
    cases["modularity + explicitness"] = (
        lambda: modularity_explicitness(zt, gt, test_codes=zs, test_factors=gs),
        lambda: modularity_explicitness_transcribed(mus[tr].T, ys[tr].T, mus[te].T, ys[te].T),
    )
    cases["unsupervised (TC, Wasserstein, MI)"] = (
        lambda: unsupervised_scores(z),
        (
            lambda: ref["_unsupervised"].metric_unsupervised(
                DisentStandIn(mus, ys), lambda x: x, num_train=args.codes, batch_size=16
            )
        )
        if ref
        else None,
    )
    cases["MCC (Pearson + Spearman)"] = (lambda: (mcc(z, g), mcc(z, g, method="spearman")), None)
    cases["probe R² (linear + kernel ridge)"] = (lambda: probe_r2(z, g), None)
    fixed = dict(batch_size=64, num_train=1000, num_eval=500)
    cases["FactorVAE (1,000 + 500 points × 64)"] = (
        lambda: factor_vae_score(lambda x: x, Levels(mixing), num_variance_estimate=10_000, prune_threshold=0.0, **fixed),
        (
            lambda: ref["_factor_vae"].metric_factor_vae(
                DisentStandIn(source=Levels(mixing)), lambda x: np.asarray(x),
                num_variance_estimate=10_000, **fixed,
            )
        )
        if ref
        else None,
    )  # fmt: skip
    cases["BetaVAE (1,000 + 500 points × 64 pairs)"] = (
        lambda: beta_vae_score(lambda x: x, Levels(mixing), **fixed),
        lambda: beta_vae_transcribed(
            Levels(mixing), lambda x: np.asarray(x), np.random.RandomState(0), **fixed
        ),
    )
    enc_w = torch.randn(28 * 28, args.latents) / 28
    dec_w = torch.linalg.pinv(enc_w)
    codes32 = z.float()
    cases["latent response (linear nets)"] = (
        lambda: latent_response_matrix(
            lambda x: x.flatten(1) @ enc_w, lambda c: (c @ dec_w).reshape(-1, 1, 28, 28), codes32
        ),
        None,
    )
    from consistency.models import build_model

    model = build_model("AE", "shapes", "plain").eval()
    bank = torch.randn(1000, model.n)
    cases["latent response (conv AE, 1,000 samples, n = 5)"] = (
        lambda: latent_response_matrix(model.means, model.generate, bank),
        None,
    )

    times: dict[str, list[float]] = {k: [] for k in cases}
    theirs: dict[str, list[float]] = {k: [] for k in cases}
    for name, (ours, disent) in cases.items():
        r = 1 if "gbt" in name else args.rounds
        for _ in range(r):
            times[name].append(timed(ours))
            if disent is not None:
                theirs[name].append(timed(disent))
    lines = [
        "# Speed of the ground-truth metrics",
        "",
        "Command: `"
        + " ".join(
            ["python benchmarks/bench_metrics.py", *(argv if argv is not None else sys.argv[1:])]
        )
        + "`",
        "",
        f"{args.codes:,} codes × {args.latents} latents × {len(LEVELS)} factors (levels {LEVELS}); "
        f"CPU, {torch.get_num_threads()} threads; median of {args.rounds} rounds (GBT: 1), ours and "
        "the reference's interleaved in the same run. Reference: disent 0.8.0's own code for "
        "MIG, DCI (gbt), SAP, the unsupervised scores and FactorVAE; disentanglement_lib's numpy "
        "code transcribed literally (tests/metrics/reference.py) for IRS, modularity / "
        "explicitness and BetaVAE, which disent lacks. SAP's classifier form, explicitness, BetaVAE "
        "and DCI (gbt) fit scikit-learn models on both sides. FactorVAE / BetaVAE draw their "
        "points from the benchmark's mixture itself (no renderer, no encoder).",
        "",
        "| metric | ours (s) | reference (s) | reference / ours |",
        "|---|---|---|---|",
    ]
    for name in cases:
        mine = sorted(times[name])[len(times[name]) // 2]
        other = sorted(theirs[name])[len(theirs[name]) // 2] if theirs[name] else None
        lines.append(
            f"| {name} | {mine:.3f} | {'—' if other is None else f'{other:.3f}'} | "
            f"{'—' if other is None else f'{other / mine:.1f}×'} |"
        )
    text = "\n".join(lines)
    print(text)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
