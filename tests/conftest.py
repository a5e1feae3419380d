from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    deadline=None,
    max_examples=20,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", deadline=None, max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def write_idx(path, array) -> None:  # type: ignore[no-untyped-def]
    """Write a uint8 IDX file (optionally .gz) like the official MNIST files."""
    import gzip
    import struct

    header = struct.pack(">HBB", 0, 0x08, array.ndim) + b"".join(
        struct.pack(">I", d) for d in array.shape
    )
    blob = header + array.astype("uint8").tobytes()
    path.write_bytes(gzip.compress(blob) if str(path).endswith(".gz") else blob)


@pytest.fixture
def mnist_root(tmp_path):  # type: ignore[no-untyped-def]
    """A tiny MNIST in ROOT/MNIST/raw (64 train, 32 test images of random blobs)."""
    import numpy as np

    rng = np.random.default_rng(0)
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, count in (("train", 64), ("t10k", 32)):
        images = (rng.random((count, 28, 28)) ** 4 * 255).astype("uint8")
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, count).astype("uint8"))
    return tmp_path / "data"


@pytest.fixture
def celeba_root(tmp_path):  # type: ignore[no-untyped-def]
    """A miniature CelebA folder: 8 JPEGs (178x218) and list_eval_partition.txt."""
    import numpy as np
    from PIL import Image

    root = tmp_path / "celeba_data"
    images = root / "img_align_celeba"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(8):
        name = f"{i + 1:06d}.jpg"
        Image.fromarray((rng.random((218, 178, 3)) * 255).astype("uint8")).save(images / name)
        lines.append(f"{name} {0 if i < 4 else 2}")  # 4 train, 4 test
    (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root
