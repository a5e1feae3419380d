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


FACTORY = """
import torch
from torch import nn
from consistency import XBlock


def build():
    torch.manual_seed(0)
    model = nn.Module()
    model.encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    model.latent = XBlock(3)
    model.decoder = nn.Sequential(nn.Linear(3, 64), nn.Sigmoid(), nn.Unflatten(1, (1, 8, 8)))
    return model
"""


def test_evaluate_a_factory_model_on_an_idx_file_and_an_image_folder(tmp_path: Path) -> None:
    """--model package.module:factory on a user's data: an IDX file of uint8 images, and a
    folder of PNGs read as grey; the same pixels give the same report."""
    import os

    import numpy as np
    from PIL import Image

    from tests.conftest import write_idx

    (tmp_path / "user_models.py").write_text(FACTORY)
    pixels = np.random.default_rng(0).integers(0, 256, (40, 8, 8)).astype("uint8")
    write_idx(tmp_path / "images-idx3-ubyte", pixels)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for k, img in enumerate(pixels):
        Image.fromarray(img, mode="L").save(folder / f"{k:03d}.png")
    reports = []
    for data in (tmp_path / "images-idx3-ubyte", folder):
        out = tmp_path / f"eval_{data.name}"
        env = {
            **os.environ,
            "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        }
        done = subprocess.run(
            [sys.executable, "-m", "consistency.cli", "evaluate", "--model", "user_models:build",
             "--data", str(data), "--samples", "20", "--interventions", "2", "--out", str(out),
             "--no-figures"],
            capture_output=True, text=True, env=env, cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        summary = json.loads((out / "self_consistency.json").read_text())
        assert summary["images"] == 40
        reports.append(json.loads((out / "report.json").read_text()))
    assert reports[0]["mean_invariance"] == pytest.approx(reports[1]["mean_invariance"], abs=1e-6)
    bad = subprocess.run(
        [sys.executable, "-m", "consistency.cli", "evaluate", "--model", "user_models:build",
         "--data", str(tmp_path / "nothing")],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 2 and "IDX file or an image folder" in bad.stderr
    assert bad.stderr.count("\n") == 1
