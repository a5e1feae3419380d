"""The effect, not just the plumbing: consistency training makes a model more consistent.

Slow (a few minutes on a 2-core CPU): excluded from the default run, run with
``python3 -m pytest -m slow``. The reduced-scale MNIST benchmark
(``benchmarks/reproduce_mnist.py``) measures the same over several seeds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quickstart_xcae_beats_ae_on_invariance(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import quickstart

        rows = quickstart.main(
            ["--seed", "0", "--no-progress", "--no-figures", "--out", str(tmp_path)]
        )
    finally:
        sys.path.remove(str(ROOT / "examples"))
    ae, xc = rows["AE"], rows["XCAE-I"]
    for key in ("mean off-diag invariance", "data-side invariance"):
        assert xc[key] is not None and ae[key] is not None
        assert xc[key] > ae[key], (key, xc[key], ae[key])
    assert "true graph:" in capsys.readouterr().out
