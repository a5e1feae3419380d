"""XCAE-I in PyTorch Lightning: an XBlock and InvarianceLoss inside a LightningModule, the
consistency scores logged at the end of each validation through ConsistencyMetric.

    pip install lightning        # or: pip install -e ".[lightning]"
    python examples/lightning_xcae.py                       # the embedded causal scene, no download
    python examples/lightning_xcae.py --max-steps 2000 --accelerator gpu --devices 2

Nothing here is special to Lightning in the library: the module is the three-line-longer loop of
the README, and ``ConsistencyMetric`` is an ``nn.Module`` with ``update`` / ``compute`` /
``reset`` whose state syncs across ranks under ``torch.distributed`` (so DDP strategies need
nothing more). Gradients of the consistency term flow through Lightning's normal
``training_step``; the loss keeps the generated images out of BatchNorm statistics.
"""

from __future__ import annotations

import argparse
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from consistency import (
    AggregatePosterior,
    ConsistencyMetric,
    InvarianceLoss,
    XBlock,
)
from consistency.data import SceneDataset

N = 5


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The docstring as written, and every flag's default in --help."""


def conv_autoencoder(n: int = N) -> tuple[nn.Module, nn.Module]:
    """A small conv encoder (28×28×1 -> n) and decoder (n -> 28×28×1), any user's model."""
    encoder = nn.Sequential(
        nn.Conv2d(1, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.Mish(),
        nn.Conv2d(16, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.Mish(),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.Mish(), nn.Linear(128, n),
    )  # fmt: skip
    decoder = nn.Sequential(
        nn.Linear(n, 128), nn.Mish(), nn.Linear(128, 32 * 7 * 7), nn.Mish(),
        nn.Unflatten(1, (32, 7, 7)),
        nn.ConvTranspose2d(32, 16, 4, 2, 1), nn.BatchNorm2d(16), nn.Mish(),
        nn.ConvTranspose2d(16, 1, 4, 2, 1), nn.Sigmoid(),
    )  # fmt: skip
    return encoder, decoder


class XCAE(L.LightningModule):
    """Autoencoder + XBlock + invariance training, with the consistency scores at validation."""

    def __init__(self, lr: float = 1e-3, weight: float = 4.0, eval_samples: int = 200) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.encoder, self.decoder = conv_autoencoder()
        self.latent = XBlock(N, 1)
        self.sampler = AggregatePosterior(N)
        # the module itself is the model (.encoder, .latent, .decoder); the loss normalises its
        # consistency passes with the BatchNorm statistics of the step's real batch
        self.invariance = InvarianceLoss(self, weight=weight)
        self.metric = ConsistencyMetric(self, n_samples=eval_samples, n_interventions=3)

    def generate(self, noise: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.latent(noise))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x = batch[0]
        noise = self.encoder(x)
        self.sampler.update(noise.detach())
        reconstruction = (self.generate(noise) - x).square().sum((1, 2, 3)).mean()
        consistency = self.invariance(noise)
        self.log_dict({"train/reconstruction": reconstruction, "train/consistency": consistency})
        return reconstruction + consistency

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.metric.update(batch[0])

    def on_validation_epoch_end(self) -> None:
        result = self.metric.compute()
        scores = {f"val/scn_{m}": v for m, v in result.self_consistency.means().items()}
        scores["val/mean_invariance"] = result.report.mean_invariance
        scores["val/reconstruction"] = result.reconstruction
        self.log_dict({k: float(v) for k, v in scores.items()}, sync_dist=False)
        self.last_scores = scores
        self.metric.reset()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=_Help)
    parser.add_argument("--max-steps", type=int, default=600, help="training steps")
    parser.add_argument("--batch-size", type=int, default=128, help="images per step")
    parser.add_argument("--train-size", type=int, default=20_000, help="training images")
    parser.add_argument("--val-size", type=int, default=1_000, help="validation images")
    parser.add_argument(
        "--eval-samples", type=int, default=200, help="prior samples T of the evaluation"
    )
    parser.add_argument("--accelerator", default="auto", help="Lightning accelerator")
    parser.add_argument("--devices", default="auto", help="Lightning devices")
    parser.add_argument("--fast-dev-run", type=int, default=0, help="Lightning's smoke mode")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds the model's initial weights, the data order and the interventions",
    )
    args = parser.parse_args(argv)
    L.seed_everything(args.seed, verbose=False)
    train = SceneDataset(args.train_size, seed=args.seed)
    val = SceneDataset(args.val_size, seed=args.seed + 1)
    loaders = [
        DataLoader(TensorDataset(d.images), batch_size=args.batch_size, shuffle=shuffle)
        for d, shuffle in ((train, True), (val, False))
    ]
    model = XCAE(eval_samples=args.eval_samples)
    trainer = L.Trainer(
        max_steps=args.max_steps,
        accelerator=args.accelerator,
        devices=args.devices,
        fast_dev_run=args.fast_dev_run or False,
        limit_val_batches=1.0,
        val_check_interval=None,
        check_val_every_n_epoch=1,
        enable_checkpointing=False,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, *loaders)
    trainer.validate(model, loaders[1], verbose=False)
    scores = {k: float(v) for k, v in model.last_scores.items()}
    for k, v in scores.items():
        print(f"{k:24s} {v:8.3f}")
    return scores


if __name__ == "__main__":
    main()
