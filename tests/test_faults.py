"""No run is lost (issue 21): killed, interrupted and corrupted runs resume to the result of the
uninterrupted run, bit for bit; an unwritable output folder fails before any training.

The runs are the causal-scene AE (no download) on one thread, a checkpoint every step, so a
kill at any step leaves something to resume. The subprocess runs ``WORKER`` below.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from consistency.errors import DataFileError
from consistency.models import build_model
from consistency.train import CHECKPOINT, PREVIOUS_CHECKPOINT, TrainConfig, load_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
STEPS = 24
WORKER = """
import sys, torch
torch.set_num_threads(1)
from consistency.data import SceneDataset
from consistency.models import build_model
from consistency.train import TrainConfig, train
out, resume, family = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
torch.manual_seed(0)
model = build_model(family, "scene", "XC-I")
cfg = TrainConfig(steps={steps}, batch_size=16, checkpoint_every=1, checkpoint_seconds=None,
                  out=out, progress=False, figures=False, seed=5)
train(model, SceneDataset(256, seed=0), cfg, resume=resume, evaluate=False)
"""


def _config(out: Path, steps: int = STEPS, **kw: Any) -> TrainConfig:
    base: dict[str, Any] = dict(
        steps=steps, batch_size=16, checkpoint_every=1, checkpoint_seconds=None, out=str(out),
        progress=False, figures=False, seed=5,
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def _uninterrupted(out: Path, family: str = "AE") -> dict[str, Any]:
    from consistency.data import SceneDataset

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model(family, "scene", "XC-I")
    train(model, SceneDataset(256, seed=0), _config(out), evaluate=False)
    return load_checkpoint(out / CHECKPOINT)


def _same_run(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["step"] == b["step"] == STEPS
    assert a["history"] == b["history"]
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def _worker(out: Path, resume: bool) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", WORKER.format(steps=STEPS), str(out), "1" if resume else "0", "AE"],
        env=env,
        stderr=subprocess.PIPE,
    )


def _checkpoint_step(out: Path) -> int:
    try:
        return int(load_checkpoint(out / CHECKPOINT)["step"])
    except Exception:  # not written yet, or being replaced
        return 0


def _wait_for_step(
    proc: subprocess.Popen[bytes], out: Path, step: int, timeout: float = 120
) -> None:
    t0 = time.monotonic()
    while _checkpoint_step(out) < step:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before step {step}: {proc.stderr.read()!r}")  # type: ignore[union-attr]
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"no checkpoint of step {step} after {timeout} s")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _uninterrupted(tmp_path_factory.mktemp("reference"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigkill_at_a_random_step_then_resume_is_the_uninterrupted_run(
    tmp_path: Path, reference: dict[str, Any], seed: int
) -> None:
    kill_at = random.Random(seed).randint(2, STEPS - 4)
    proc = _worker(tmp_path, resume=False)
    _wait_for_step(proc, tmp_path, kill_at)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < _checkpoint_step(tmp_path) < STEPS
    resumed = _worker(tmp_path, resume=True)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()  # type: ignore[union-attr]
    _same_run(load_checkpoint(tmp_path / CHECKPOINT), reference)


def test_sigint_saves_and_resumes(tmp_path: Path, reference: dict[str, Any]) -> None:
    proc = _worker(tmp_path, resume=False)
    _wait_for_step(proc, tmp_path, 5)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert b"interrupted at step" in proc.stderr.read()  # type: ignore[union-attr]
    resumed = _worker(tmp_path, resume=True)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()  # type: ignore[union-attr]
    _same_run(load_checkpoint(tmp_path / CHECKPOINT), reference)


@pytest.mark.parametrize("damage", ["truncated", "zero bytes"])
def test_a_corrupt_latest_checkpoint_resumes_from_the_previous(
    tmp_path: Path, reference: dict[str, Any], damage: str
) -> None:
    from consistency.data import SceneDataset

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model("AE", "scene", "XC-I")
    train(model, SceneDataset(256, seed=0), _config(tmp_path), evaluate=False)
    assert load_checkpoint(tmp_path / PREVIOUS_CHECKPOINT)["step"] == STEPS - 1  # kept
    latest = tmp_path / CHECKPOINT
    blob = latest.read_bytes()
    latest.write_bytes(blob[: len(blob) // 2] if damage == "truncated" else b"")
    torch.manual_seed(0)
    model = build_model("AE", "scene", "XC-I")
    with pytest.warns(UserWarning, match="resuming from the previous one"):
        train(model, SceneDataset(256, seed=0), _config(tmp_path), resume=True, evaluate=False)
    _same_run(load_checkpoint(latest), reference)


def test_an_unwritable_output_folder_fails_before_training(tmp_path: Path) -> None:
    from consistency.data import SceneDataset

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    outs = [blocker / "run"]  # a folder under a file: never writable, whoever runs the test
    if os.geteuid() != 0:  # a read-only folder (root writes through permissions)
        ro = tmp_path / "read-only"
        ro.mkdir()
        ro.chmod(0o500)
        outs.append(ro / "run")
    for out in outs:
        t0 = time.perf_counter()
        with pytest.raises(DataFileError, match="cannot write to the output folder"):
            train(
                build_model("AE", "scene"), SceneDataset(64, seed=0), _config(out), evaluate=False
            )
        assert time.perf_counter() - t0 < 5.0


def test_two_identical_example_commands_give_identical_histories(tmp_path: Path) -> None:
    """``--seed`` fixes everything: the model's initial weights, the data order, interventions."""
    histories = []
    for run in ("a", "b"):
        out = tmp_path / run
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run(
            [sys.executable, str(ROOT / "examples" / "mnist_xcae.py"), "--dataset", "scene",
             "--preset", "scene", "--steps", "4", "--batch-size", "16", "--train-size", "256",
             "--eval-data", "32", "--eval-samples", "8", "--eval-interventions", "1",
             "--no-progress", "--no-figures", "--seed", "3", "--out", str(out)],
            check=True, env=env, capture_output=True,
        )  # fmt: skip
        histories.append(json.loads((out / "history.json").read_text())["history"])
    assert histories[0] == histories[1] and len(histories[0]) == 4


def test_example_user_errors_are_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "mnist_xcae.py"), "--dataset", "scene",
         "--preset", "scene", "--steps", "2", "--out", str(blocker / "run"), "--no-progress"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("error: cannot write to the output folder")
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    resume = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "mnist_xcae.py"), "--dataset", "scene",
         "--preset", "scene", "--steps", "2", "--out", str(tmp_path / "new"), "--resume"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert resume.returncode == 2 and "Traceback" not in resume.stderr
    assert "no checkpoint in" in resume.stderr


def test_a_mistyped_data_root_creates_no_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import urllib.request

    from consistency.data import mnist

    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    root = tmp_path / "mistyped" / "root"
    with pytest.raises(DataFileError, match="could not be downloaded"):
        mnist(root, "train")
    assert not (tmp_path / "mistyped").exists()


def test_help_shows_every_default_and_the_presets() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "mnist_xcae.py"), "--help"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    text = " ".join(done.stdout.split())
    for flag, default in (("--steps", "500"), ("--lr", "0.0001"), ("--seed", "11"),
                          ("--checkpoint-every", "1000"), ("--checkpoint-seconds", "120.0")):  # fmt: skip
        assert flag in text and f"(default: {default})" in text, flag
    assert "{S,Standard,S4,v32,v324,scene,pendulum,shapes}" in text
    bad = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "mnist_xcae.py"), "--preset", "XL"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 2 and "invalid choice: 'XL'" in bad.stderr
    assert "Traceback" not in bad.stderr
