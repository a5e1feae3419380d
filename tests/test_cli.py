"""The installed ``consistency`` command, through a subprocess as a user runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def consistency(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consistency.cli", *args], capture_output=True, text=True,
        check=check,
    )  # fmt: skip


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("quickstart")
    done = consistency(
        "quickstart", "--steps", "6", "--out", str(out), "--no-progress", "--no-figures"
    )
    assert "| run |" in done.stdout and "XCAE-I" in done.stdout
    return out


def test_quickstart_trains_two_models_and_compares_them(quickstart: Path) -> None:
    rows = json.loads((quickstart / "compare.json").read_text())
    assert [Path(r["run"]).name for r in rows] == ["AE", "XCAE-I"]
    assert rows[0]["mean_equivariance"] is None and rows[1]["edge_density"] is not None


def test_evaluate_scores_a_checkpoint_with_ground_truth(quickstart: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    done = consistency(
        "evaluate", str(quickstart / "XCAE-I"), "--data", "scene", "--eval-data", "200",
        "--samples", "50", "--interventions", "2", "--out", str(out), "--no-figures",
    )  # fmt: skip
    assert f"written to {out}" in done.stdout
    report = json.loads((out / "report.json").read_text())
    summary = json.loads((out / "self_consistency.json").read_text())
    assert report["mean_invariance"] == pytest.approx(summary["mean_invariance"])
    assert set(summary["self_consistency"]) == {"posterior", "hybrid", "uniform"}
    assert set(json.loads((out / "ground_truth.json").read_text())) >= {"irs", "mig"}
    table = consistency("compare", str(quickstart / "AE"), str(out)).stdout
    assert table.count("\n") == 4 and "eval" in table


def test_user_errors_are_one_line_with_status_2(tmp_path: Path) -> None:
    for args, message in (
        (("evaluate", str(tmp_path / "none.pt")), "error: no checkpoint at"),
        (("evaluate", "--model", "nowhere.module:build"), "error: --model: cannot import"),
        (("evaluate",), "error: evaluate needs a CHECKPOINT or --model"),
        (("compare", str(tmp_path)), "has no report.json"),
    ):
        done = consistency(*args, check=False)
        assert done.returncode == 2, args
        assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_help_of_every_subcommand_and_the_installed_script() -> None:
    for sub in ("evaluate", "compare", "quickstart"):
        text = consistency(sub, "--help").stdout
        assert "(default:" in text
    assert "evaluate" in consistency("--help").stdout
    if shutil.which("consistency") is not None:  # installed by pip install -e .
        done = subprocess.run(["consistency", "--help"], capture_output=True, text=True)
        assert done.returncode == 0 and "quickstart" in done.stdout
