"""Data sets for the examples (optional layer: the core library never imports it).

Default root: ``$CONSISTENCY_DATA_DIR`` or ``~/.cache/consistency/data``.
"""

from ._common import ImageDataset, default_root
from .celeba import CelebA, celeba
from .mnist import MNIST_FILES, mnist, read_idx
from .synthetic import FACTOR_NAMES, CausalScene, SceneDataset

__all__ = [
    "FACTOR_NAMES",
    "MNIST_FILES",
    "CausalScene",
    "CelebA",
    "ImageDataset",
    "SceneDataset",
    "celeba",
    "default_root",
    "mnist",
    "read_idx",
]
