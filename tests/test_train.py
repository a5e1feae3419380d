from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from consistency.data import mnist
from consistency.models import build_model
from consistency.train import TrainConfig, train, warmup_lengths

ROOT = Path(__file__).resolve().parents[1]


def config(out: Path, steps: int, **kw) -> TrainConfig:  # type: ignore[no-untyped-def]
    base = dict(
        steps=steps,
        batch_size=8,
        checkpoint_every=2,
        out=str(out),
        eval_samples=8,
        eval_interventions=1,
        eval_data=16,
        progress=False,
        figures=False,
        tau_schedule="authors",
        warmup_steps=4,
        seed=13,
    )
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_resume_is_bit_for_bit(mnist_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = mnist(mnist_root, "train", download=False)
    torch.manual_seed(0)
    straight = build_model(
        "VAE", "S", "XC-I"
    )  # stochastic encoder + Gumbel gates + interventions: every RNG
    train(straight, data, config(tmp_path / "a", 6))
    torch.manual_seed(0)
    first = build_model("VAE", "S", "XC-I")
    part = train(first, data, config(tmp_path / "b", 3))
    assert (tmp_path / "b" / "checkpoint.pt").exists() and part.steps == 3
    torch.manual_seed(1)  # whatever the fresh model holds, the checkpoint replaces it
    resumed = build_model("VAE", "S", "XC-I")
    result = train(resumed, data, config(tmp_path / "b", 6), resume=True)
    assert result.steps == 6 and len(result.history) == 6
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), name
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["extras"]["steps"] == 6 and report["extras"]["variant"] == "XC-I"
    spec = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["model_spec"]
    assert spec == {"family": "VAE", "preset": "S", "variant": "XC-I"}


def test_resume_keeps_a_lazy_losss_schedule(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With the loss computed on every second step (``every=2``), a run resumed at an odd step
    computes it on the steps an uninterrupted run does: the weights agree bit for bit."""
    from consistency import RECIPE
    from consistency.data import SceneDataset
    from consistency.models import Recipe

    data = SceneDataset(32, seed=0)
    recipe = Recipe(consistency=RECIPE.replace(every=2))

    def built(seed: int) -> Any:
        torch.manual_seed(seed)
        return build_model("AE", "scene", "XC-I", recipe=recipe)

    straight = built(0)
    train(straight, data, config(tmp_path / "a", 5), evaluate=False)
    train(built(0), data, config(tmp_path / "b", 3), evaluate=False)
    resumed = built(1)  # whatever the fresh model holds, the checkpoint replaces it
    train(resumed, data, config(tmp_path / "b", 5), resume=True, evaluate=False)
    assert resumed.consistency is not None and resumed.consistency.every == 2
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), name


def test_resume_without_checkpoint(mnist_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = mnist(mnist_root, "train", download=False)
    with pytest.raises(FileNotFoundError, match=r"no checkpoint in .*start without --resume"):
        train(build_model("AE", "S"), data, config(tmp_path / "none", 2), resume=True)


def _run_example(name: str, args: list[str]) -> Any:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        module = __import__(name)
        return module.main(args)
    finally:
        sys.path.remove(str(ROOT / "examples"))


COMMON = [
    "--steps",
    "2",
    "--batch-size",
    "4",
    "--eval-samples",
    "4",
    "--eval-interventions",
    "1",
    "--eval-data",
    "8",
    "--no-progress",
]


def test_mnist_example_end_to_end(mnist_root, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    _run_example(
        "mnist_xcae", [*COMMON, "--data-root", str(mnist_root), "--out", str(tmp_path / "run")]
    )
    assert "test reconstruction error" in capsys.readouterr().out
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {
        "checkpoint.pt",
        "report.json",
        "report.txt",
        "invariance_posterior.png",
        "latent_traversals.png",
    } <= names
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["mean_invariance"] is not None and math.isfinite(report["mean_invariance"])
    scn = report["extras"]["self_consistency_modes"]
    assert set(scn) == {"posterior", "hybrid", "uniform"}
    assert all(v is not None and math.isfinite(v) for v in scn.values()), scn
    assert math.isfinite(report["extras"]["test_reconstruction"])


@pytest.mark.filterwarnings(
    "ignore:.*zero variance:RuntimeWarning"
)  # a 2-step v32 on 4 noise images is degenerate
def test_celeba_example_end_to_end(celeba_root, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    _run_example(
        "celeba_xcae",
        [
            *COMMON,
            "--batch-size",
            "2",
            "--no-figures",
            "--variant",
            "plain",
            "--data-root",
            str(celeba_root),
            "--out",
            str(tmp_path / "run"),
            "--eval-data",
            "2",
            "--eval-samples",
            "2",
        ],
    )
    assert "mean off-diagonal invariance" in capsys.readouterr().out
    assert (tmp_path / "run" / "report.json").exists()


def test_retrofit_example_end_to_end(mnist_root, capsys) -> None:  # type: ignore[no-untyped-def]
    results = _run_example(
        "retrofit",
        [
            "--steps",
            "2",
            "--eval-images",
            "64",
            "--eval-samples",
            "20",
            "--data-root",
            str(mnist_root),
        ],
    )
    out = capsys.readouterr().out
    assert "retrofit   step    0" in out and "SCN hybrid" in out
    assert set(results) == {"plain twin", "retrofit"}
    assert set(results["retrofit"]) == {
        "reconstruction",
        "mean INV",
        "SCN posterior",
        "SCN hybrid",
        "SCN uniform",
    }


def test_quickstart_end_to_end(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    rows = _run_example(
        "quickstart",
        [
            "--steps",
            "3",
            "--train-size",
            "256",
            "--test-size",
            "128",
            "--eval-samples",
            "16",
            "--eval-interventions",
            "1",
            "--no-progress",
            "--out",
            str(tmp_path / "qs"),
        ],
    )
    out = capsys.readouterr().out
    for line in (
        "mean off-diag invariance",
        "self-consistency (uniform)",
        "noise MMD²",
        "SHD vs true graph",
        "true graph:",
        "XCAE-I learned:",
    ):
        assert line in out
    assert (tmp_path / "qs" / "XCAE-I" / "graph_learned_vs_true.png").exists()
    assert (tmp_path / "qs" / "AE" / "report.json").exists()
    # the numbers, not only the strings: every score of both models is a finite number in its
    # range (3 steps are too few for XC to beat AE; tests/test_effect.py checks that, slow)
    assert set(rows) == {"AE", "XCAE-I"}
    for label, row in rows.items():
        assert row["reconstruction error"] is not None and 0 < row["reconstruction error"] < 1e4
        for key in (
            "mean off-diag invariance",
            "self-consistency (posterior)",
            "self-consistency (hybrid)",
            "self-consistency (uniform)",
            "noise MMD² (hybrid)",
            "data-side invariance",
        ):
            value = row[key]
            assert value is not None and math.isfinite(value), (label, key, value)
            assert value <= 1.0 + 1e-9 or key.startswith("noise"), (label, key, value)
    xc = rows["XCAE-I"]
    assert xc["SHD vs true graph"] is not None and 0 <= xc["SHD vs true graph"] <= 20
    assert xc["P(random SHD <= learned)"] is not None and 0 <= xc["P(random SHD <= learned)"] <= 1


def test_scene_dataset_in_training_example(tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import consistency.data as data

    monkeypatch.setattr(data.SceneDataset, "__init__", _small_scene_init)
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import mnist_xcae

        monkeypatch.setattr(mnist_xcae, "SceneDataset", data.SceneDataset)
        mnist_xcae.main(
            [*COMMON, "--dataset", "scene", "--no-figures", "--out", str(tmp_path / "scene")]
        )
    finally:
        sys.path.remove(str(ROOT / "examples"))
    assert "test reconstruction error" in capsys.readouterr().out


_original_scene_init = __import__(
    "consistency.data", fromlist=["SceneDataset"]
).SceneDataset.__init__


def _small_scene_init(self, n: int = 60_000, size: int = 28, seed: int = 0) -> None:  # type: ignore[no-untyped-def]
    _original_scene_init(
        self, min(n, 64), size, seed
    )  # the example asks for 60k; 64 keep the test fast


def test_amp_training_runs(mnist_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = mnist(mnist_root, "train", download=False)
    result = train(build_model("AE", "S", "XC-E"), data, config(tmp_path / "amp", 2, amp=True))
    assert result.steps == 2 and all(
        torch.isfinite(torch.tensor(h["total"])) for h in result.history
    )


def test_tau_schedules_follow_their_formulas() -> None:
    import math

    from consistency.train import tau_at

    steps = 50
    anneal = [tau_at(s, steps, "anneal", 1.0, 0.2) for s in range(steps)]
    assert anneal[0] == pytest.approx(1.0) and anneal[-1] == pytest.approx(0.2)
    for s, tau in enumerate(anneal):
        assert tau == pytest.approx(0.2 ** (s / (steps - 1)))
    assert tau_at(700, 1000, "authors") == 0.01
    assert tau_at(30, 1000, "authors") == pytest.approx(math.exp(-0.3))
    assert tau_at(3, 10, "constant") is None
    with pytest.raises(ValueError, match="schedule must be one of"):
        tau_at(0, 10, "cosine")


def test_history_records_schedules_per_step(mnist_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from consistency.train import tau_at

    data = mnist(mnist_root, "train", download=False)
    cfg = config(
        tmp_path / "h", 6, tau_schedule="anneal", tau_start=0.9, tau_end=0.3, warmup_steps=4
    )
    result = train(build_model("AE", "S", "XC-I"), data, cfg, evaluate=False)
    assert [h["tau"] for h in result.history] == pytest.approx(
        [tau_at(s, 6, "anneal", 0.9, 0.3) for s in range(6)]
    )
    assert [h["consistency_weight"] for h in result.history] == pytest.approx(
        [4.0 * min(1.0, s / 4) for s in range(6)]
    )
    assert all(h["lr"] == pytest.approx(1e-4) for h in result.history)
    assert all(h["grad_norm"] > 0 and math.isfinite(h["grad_norm"]) for h in result.history)
    assert not (tmp_path / "h" / "report.json").exists()  # evaluate=False


def test_kl_warmup_and_gate_learning_rate(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from consistency.data import SceneDataset

    data = SceneDataset(32, seed=0)
    model = build_model("VAE", "scene", "X")
    cfg = config(tmp_path / "k", 6, kl_warmup_steps=4, gate_lr_scale=10.0, lr=1e-3)
    before = model.xblock.gate_logits.detach().clone()  # type: ignore[union-attr]
    result = train(model, data, cfg, evaluate=False)
    assert [h["kl_scale"] for h in result.history] == pytest.approx(
        [min(1.0, s / 4) for s in range(6)]
    )
    # the first step's KL weight is 0: the regulariser recorded is 0 exactly
    assert result.history[0]["regulariser"] == 0.0 and result.history[5]["regulariser"] > 0
    moved = (model.xblock.gate_logits.detach() - before).abs().max()  # type: ignore[union-attr]
    assert 6 * 1e-3 < float(moved) <= 6 * 1e-2 * 1.01  # Adam: ~lr x scale per step at most
    # an XC model's loss ramps with the KL unless told otherwise
    xc_vae = build_model("VAE", "scene", "XC-I")
    weight = xc_vae.consistency_weight
    ramped = train(xc_vae, data, config(tmp_path / "x", 3, kl_warmup_steps=4), evaluate=False)
    assert [h["kl_scale"] for h in ramped.history] == pytest.approx([0.0, 0.25, 0.5])
    assert [h["consistency_weight"] for h in ramped.history] == pytest.approx(
        [0.0, 0.25 * weight, 0.5 * weight]
    )
    own = train(
        build_model("VAE", "scene", "XC-I"),
        data,
        config(tmp_path / "o", 3, kl_warmup_steps=4, warmup_steps=0),
        evaluate=False,
    )
    assert [h["consistency_weight"] for h in own.history] == pytest.approx([weight] * 3)
    # the AVAE is left alone (its measured best is no warm-up), as is a family without a KL
    avae = train(
        build_model("AVAE", "scene", "plain"),
        data,
        config(tmp_path / "a", 3, kl_warmup_steps=4),
        evaluate=False,
    )
    assert [h["kl_scale"] for h in avae.history] == [1.0, 1.0, 1.0]
    cfg4 = TrainConfig(kl_warmup_steps=4)
    assert warmup_lengths(build_model("AVAE", "scene", "XC-I"), cfg4) == (0, 0)
    ae = build_model("AE", "scene", "XC-I")
    assert warmup_lengths(ae, cfg4) == (0, 0)
    assert warmup_lengths(ae, TrainConfig(kl_warmup_steps=4, warmup_steps=7)) == (7, 0)
    assert warmup_lengths(build_model("VAE", "scene", "XC-I"), cfg4) == (4, 4)
    for bad, match in (
        (dict(kl_warmup_steps=-1), "kl_warmup_steps must be >= 0"),
        (dict(warmup_steps=-1), "warmup_steps must be >= 0"),
        (dict(gate_lr_scale=0.0), "gate_lr_scale must be > 0"),
    ):
        with pytest.raises(ValueError, match=match):
            TrainConfig(**bad)  # type: ignore[arg-type]


def test_grad_clip_caps_the_update_and_rejects_bad_values(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With a cap far below the gradient norm, the first Adam step is unchanged (Adam is
    scale-invariant per coordinate) but the recorded norm is the pre-clip one; the cap must be
    positive."""
    from consistency.data import SceneDataset

    with pytest.raises(ValueError, match="grad_clip must be > 0 or None; got 0"):
        TrainConfig(grad_clip=0.0)
    data = SceneDataset(16, seed=0)
    norms = {}
    for clip in (None, 1e-3):
        torch.manual_seed(0)
        model = build_model("AE", "scene", "plain")
        cfg = TrainConfig(
            steps=2,
            batch_size=8,
            lr=1e-3,
            checkpoint_every=0,
            out=str(tmp_path / str(clip)),
            progress=False,
            figures=False,
            grad_clip=clip,
            seed=1,
        )
        result = train(model, data, cfg, evaluate=False)
        norms[clip] = [h["grad_norm"] for h in result.history]
    assert norms[None][0] == pytest.approx(norms[1e-3][0], rel=1e-6)  # recorded before the cap
    assert norms[None][0] > 1e-3


def test_default_schedule_is_the_recipe_and_bad_schedule() -> None:
    assert TrainConfig().tau_schedule == "anneal"
    with pytest.raises(TypeError):
        TrainConfig(anneal_tau=True)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="tau_schedule must be one of"):
        TrainConfig(tau_schedule="cosine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tau_start and tau_end must be > 0"):
        TrainConfig(tau_end=0.0)


def test_schedules_follow_their_formulas_across_an_interrupted_and_resumed_run(
    tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """λ warm-up, τ annealing over the whole run and the learning-rate halving, step by step,
    against their formulas: a run interrupted at step 6 and resumed to 10 records the values an
    uninterrupted 10-step run must have (not merely the same values as another run)."""
    from consistency.data import SceneDataset
    from consistency.models import PaperModel
    from consistency.train import tau_at

    data = SceneDataset(32, seed=0)  # batch 8: an epoch is 4 steps
    cfg = TrainConfig(
        steps=10,
        batch_size=8,
        lr=2e-3,
        halve_lr_every_epochs=1,
        tau_schedule="anneal",
        tau_start=0.8,
        tau_end=0.1,
        warmup_steps=5,
        checkpoint_every=0,
        out=str(tmp_path / "run"),
        progress=False,
        figures=False,
        seed=3,
    )
    torch.manual_seed(0)
    model = build_model("AE", "scene", "XC-I")
    calls = {"n": 0}
    original = PaperModel.loss

    def interrupted_loss(self, x):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 7:  # the 7th step never happens: Ctrl-C after 6 steps
            raise KeyboardInterrupt
        return original(self, x)

    monkeypatch.setattr(PaperModel, "loss", interrupted_loss)
    with pytest.warns(UserWarning, match="interrupted at step 6"):
        part = train(model, data, cfg, evaluate=False)
    assert part.interrupted and part.steps == 6
    monkeypatch.setattr(PaperModel, "loss", original)
    resumed = build_model("AE", "scene", "XC-I")
    result = train(resumed, data, cfg, resume=True, evaluate=False)
    history = result.history
    assert [h["step"] for h in history] == list(range(1, 11))
    for s, h in enumerate(history):  # record s describes the update made at step index s
        assert h["tau"] == pytest.approx(tau_at(s, 10, "anneal", 0.8, 0.1), rel=1e-12)
        assert h["consistency_weight"] == pytest.approx(4.0 * min(1.0, s / 5), rel=1e-12)
        assert h["lr"] == pytest.approx(2e-3 * 0.5 ** (s // 4), rel=1e-12)


def test_time_limit_stops_saves_and_resumes(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A run with a time limit stops after the step that crosses it, says so, saves a checkpoint
    that resume continues; the limit must be positive."""
    import consistency.train as train_module
    from consistency.data import SceneDataset

    with pytest.raises(ValueError, match="time_limit must be > 0 seconds or None; got 0"):
        TrainConfig(time_limit=0)
    clock = iter(range(1000))  # every perf_counter() call advances one "second"
    monkeypatch.setattr(train_module.time, "perf_counter", lambda: float(next(clock)))
    data = SceneDataset(16, seed=0)
    cfg = TrainConfig(
        steps=10,
        batch_size=8,
        checkpoint_every=0,
        checkpoint_seconds=None,  # the fake clock below counts perf_counter() calls
        out=str(tmp_path),
        progress=False,
        figures=False,
        time_limit=3,
    )
    torch.manual_seed(0)
    model = build_model("AE", "scene", "plain")
    with pytest.warns(UserWarning, match="time_limit of 3 s reached at step 3 of 10"):
        result = train(model, data, cfg, evaluate=False)
    assert result.steps == 3 and result.time_limited and len(result.history) == 3
    assert json.loads((tmp_path / "history.json").read_text())["steps_done"] == 3
    monkeypatch.undo()
    done = train(
        model, data, dataclasses.replace(cfg, time_limit=None), evaluate=False, resume=True
    )
    assert done.steps == 10 and not done.time_limited
    assert [h["step"] for h in done.history] == list(range(1, 11))


def test_example_evaluation_budget_flags() -> None:
    """--eval auto is quick below FULL_EVAL_FROM_STEPS steps and full from there; explicit
    --eval-* flags win over either; --quick-eval is --eval quick; --time-limit reaches the config."""
    import argparse

    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import _cli
    finally:
        sys.path.remove(str(ROOT / "examples"))

    def config(*argv: str) -> TrainConfig:
        parser = argparse.ArgumentParser()
        _cli.add_arguments(parser, preset="S", steps=500, out="runs/x")
        return _cli.config_from_args(parser.parse_args(list(argv)))

    quick, full = _cli.QUICK_EVAL, TrainConfig()
    budget = lambda c: (c.eval_samples, c.eval_interventions, c.eval_data)  # noqa: E731
    assert budget(config()) == quick  # 500 steps
    assert budget(config("--steps", str(_cli.FULL_EVAL_FROM_STEPS - 1))) == quick
    full_budget = (full.eval_samples, full.eval_interventions, full.eval_data)
    assert budget(config("--steps", str(_cli.FULL_EVAL_FROM_STEPS))) == full_budget
    assert budget(config("--eval", "full")) == full_budget
    assert budget(config("--steps", "100000", "--quick-eval")) == quick
    assert budget(config("--eval-samples", "50")) == (50, *quick[1:])
    assert config("--time-limit", "30").time_limit == 30.0 and config().time_limit is None
