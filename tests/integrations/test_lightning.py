"""The Lightning callback, for real: fits with TensorBoard, CSV and (offline) W&B loggers, and
what they wrote read back."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

L = pytest.importorskip("lightning")
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from consistency import ConsistencyError, ConsistencyMetric, InvarianceLoss, XBlock  # noqa: E402
from consistency.integrations.lightning import ConsistencyCallback  # noqa: E402

N = 3


class TinyXC(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, N))
        self.latent = XBlock(N)
        self.decoder = nn.Sequential(nn.Linear(N, 64), nn.Sigmoid(), nn.Unflatten(1, (1, 8, 8)))
        self.invariance = InvarianceLoss(self, n_samples=8)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x = batch[0]
        means = self.encoder(x)
        rec = (self.decoder(self.latent(means)) - x).square().sum((1, 2, 3)).mean()
        return rec + self.invariance(means)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        pass

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def loaders() -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(0)
    train = torch.rand(64, 1, 8, 8, generator=g)
    val = torch.rand(32, 1, 8, 8, generator=g)
    return (
        DataLoader(TensorDataset(train), batch_size=16),
        DataLoader(TensorDataset(val), batch_size=16),
    )


def fit(tmp_path: Path, logger: Any, callback: ConsistencyCallback, epochs: int = 1) -> TinyXC:
    torch.manual_seed(0)
    model = TinyXC()
    trainer = L.Trainer(
        max_epochs=epochs,
        limit_train_batches=2,
        limit_val_batches=2,
        logger=logger,
        callbacks=[callback],
        default_root_dir=tmp_path,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
    )
    trainer.fit(model, *loaders())
    return model


def expected_scores(model: TinyXC, callback: ConsistencyCallback) -> dict[str, float]:
    """A ConsistencyMetric built by hand on the final weights and the two validation batches."""
    metric = ConsistencyMetric(model, **callback.metric_kwargs)
    for (x,) in list(loaders()[1])[: callback.max_batches]:
        metric.update(x)
    return metric.compute().scalars()


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)


def test_tensorboard_event_file_holds_every_scalar_and_the_figures(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    callback = ConsistencyCallback(max_batches=2, n_samples=12, n_interventions=2)
    logger = TensorBoardLogger(tmp_path, name="tb")
    model = fit(tmp_path, logger, callback, epochs=2)
    expected = expected_scores(model, callback)
    assert callback.last_scores.keys() == expected.keys()
    assert all(same(callback.last_scores[k], v) for k, v in expected.items())
    for key in ("mean_invariance", "mean_equivariance", "mmd_hybrid", "reconstruction",
                "self_consistency/posterior", "self_consistency/hybrid",
                "self_consistency/uniform", "gates/edge_density", "gates/confidence"):  # fmt: skip
        assert key in expected
    acc = EventAccumulator(logger.log_dir, size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    for key, value in expected.items():
        events = acc.Scalars(f"consistency/{key}")
        assert len(events) == 2  # the validations of epochs 0 and 1; not the sanity check
        assert same(events[-1].value, value), (key, events[-1].value, value)
    for figure in ("invariance", "traversals", "adjacency"):
        images = acc.Images(f"consistency/{figure}")
        assert len(images) == 2 and images[-1].width > 100 and images[-1].height > 100
    assert "consistency/invariance" in tags["images"]


def test_every_n_epochs_and_csv_logger_with_png_figures(tmp_path: Path) -> None:
    callback = ConsistencyCallback(
        every_n_epochs=2, max_batches=1, n_samples=8, n_interventions=2, figures=("invariance",)
    )
    logger = CSVLogger(tmp_path, name="csv")
    fit(tmp_path, logger, callback, epochs=3)
    rows = list(csv.DictReader(open(Path(logger.log_dir) / "metrics.csv")))
    logged = [r for r in rows if r.get("consistency/mean_invariance")]
    assert [int(r["epoch"]) for r in logged] == [0, 2]
    assert same(
        float(logged[-1]["consistency/mean_invariance"]), callback.last_scores["mean_invariance"]
    )
    pngs = sorted(p.name for p in (Path(logger.log_dir) / "consistency_figures").glob("*.png"))
    assert len(pngs) == 2 and all(p.startswith("invariance_step") for p in pngs)


def wandb_history(run_file: Path) -> dict[str, str]:
    """Every history value an offline W&B run file holds (the last per key). The file is the
    LevelDB log format (32 KiB blocks of records with a 7-byte header: checksum, length, kind)
    after a 7-byte W&B header; each record is a ``wandb_internal_pb2.Record``."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, block, buf = run_file.read_bytes(), 7, 32768, b""
    values: dict[str, str] = {}
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = struct.unpack("<HB", data[pos + 4 : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (2, 3):  # first / middle fragment
            buf = chunk if kind == 2 else buf + chunk
            continue
        if kind not in (1, 4):
            continue
        record = pb.Record()
        record.ParseFromString(chunk if kind == 1 else buf + chunk)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            for item in record.history.item:
                values[item.key or "/".join(item.nested_key)] = item.value_json
        elif kind == "summary":  # the run's final values, written when it finishes
            for item in record.summary.update:
                values.setdefault(item.key or "/".join(item.nested_key), item.value_json)
    return values


def test_wandb_offline_run_has_the_scalars_and_images(tmp_path: Path, monkeypatch: Any) -> None:
    pytest.importorskip("wandb")
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    callback = ConsistencyCallback(max_batches=2, n_samples=8, n_interventions=2)
    logger = WandbLogger(offline=True, save_dir=str(tmp_path), project="consistency-test")
    fit(tmp_path, logger, callback)
    wandb.finish()
    (run_file,) = Path(tmp_path).rglob("offline-run-*/run-*.wandb")
    history = wandb_history(run_file)
    for _ in range(40):  # wandb's writer is a separate process: wait until it has flushed
        if all(f"consistency/{k}" in history for k in callback.last_scores):
            break
        time.sleep(0.25)
        history = wandb_history(run_file)
    for key, value in callback.last_scores.items():
        assert same(float(history[f"consistency/{key}"]), value), key
    for figure in ("invariance", "traversals", "adjacency"):
        assert history[f"consistency/{figure}/_type"] == '"images/separated"'
    media = [p.name for p in run_file.parent.rglob("media/images/consistency/*.png")]
    assert sorted(m.split("_")[0] for m in media) == ["adjacency", "invariance", "traversals"]


def test_model_attribute_function_and_bad_arguments(tmp_path: Path) -> None:
    model = TinyXC()
    assert ConsistencyCallback()._target(model) is model
    assert ConsistencyCallback(model=lambda m: m.encoder)._target(model) is model.encoder
    with pytest.raises(ConsistencyError, match="no attribute 'autoencoder'"):
        ConsistencyCallback(model="autoencoder")._target(model)
    with pytest.raises(ConsistencyError, match="figures must be among"):
        ConsistencyCallback(figures=("heatmap",))
    with pytest.raises(ConsistencyError, match="every_n_epochs"):
        ConsistencyCallback(every_n_epochs=0)
    with pytest.raises(ConsistencyError, match="cannot find the images"):
        ConsistencyCallback().images({"x": torch.zeros(2)})
