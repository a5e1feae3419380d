"""The framework examples run with no special code in the library (Lightning's smoke mode)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _example(name: str):  # type: ignore[no-untyped-def]
    """Import ``examples/<name>.py`` as a module (examples import their siblings by name)."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(ROOT / "examples"))


def test_lightning_example_fast_dev_run() -> None:
    pytest.importorskip(
        "lightning", reason="lightning is not installed (pip install -e '.[lightning]')"
    )
    scores = _example("lightning_xcae").main(
        ["--fast-dev-run", "2", "--train-size", "256", "--val-size", "64", "--batch-size", "32",
         "--eval-samples", "16"]
    )  # fmt: skip
    assert set(scores) == {
        "val/scn_posterior", "val/scn_hybrid", "val/scn_uniform", "val/mean_invariance",
        "val/reconstruction",
    }  # fmt: skip
    assert all(math.isfinite(v) for v in scores.values())
    assert scores["val/reconstruction"] > 0 and scores["val/mean_invariance"] <= 1.0


def test_third_party_pythae_example(mnist_root) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("pythae", reason="pythae is not installed (pip install pythae)")
    scores = _example("third_party").main(
        ["--steps", "2", "--batch-size", "8", "--eval-images", "32", "--eval-samples", "8",
         "--data-root", str(mnist_root)]
    )  # fmt: skip
    assert {"scn_posterior", "scn_hybrid", "scn_uniform", "mean_invariance"} <= set(scores)
    assert all(math.isfinite(v) for v in scores.values())
