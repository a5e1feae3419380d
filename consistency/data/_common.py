from __future__ import annotations

import os
from pathlib import Path

from torch import Tensor
from torch.utils.data import Dataset

from ..errors import InvalidValueError


def default_root() -> Path:
    """``$CONSISTENCY_DATA_DIR`` or ``~/.cache/consistency/data``."""
    env = os.environ.get("CONSISTENCY_DATA_DIR")
    return Path(env) if env else Path.home() / ".cache" / "consistency" / "data"


class ImageDataset(Dataset[tuple[Tensor, Tensor]]):
    """Images ``(N, C, H, W)`` in ``[0, 1]`` (float32) with integer labels ``(N,)``, held in memory."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        if images.ndim != 4 or labels.shape != (images.shape[0],):
            raise InvalidValueError(
                f"images must be (N, C, H, W) and labels (N,); got {tuple(images.shape)}, {tuple(labels.shape)}"
            )
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]

    def subset(self, size: int) -> ImageDataset:
        """The first ``size`` examples."""
        return ImageDataset(self.images[:size], self.labels[:size])
