"""Data sets for the examples (optional layer: the core library never imports it).

Default root: ``$CONSISTENCY_DATA_DIR`` or ``~/.cache/consistency/data``.
"""

from ._common import ImageDataset, default_root
from .celeba import CelebA, celeba
from .mnist import MNIST_FILES, mnist, read_idx
from .pendulum import PENDULUM_FACTOR_NAMES, Pendulum
from .shapes import SHAPES_FACTOR_NAMES, Shapes
from .synthetic import (
    FACTOR_NAMES,
    CausalScene,
    InterventionPairs,
    PairsDataset,
    SceneDataset,
    StructuralData,
    StructuralDataset,
)

__all__ = [
    "FACTOR_NAMES",
    "MNIST_FILES",
    "PENDULUM_FACTOR_NAMES",
    "SHAPES_FACTOR_NAMES",
    "CausalScene",
    "CelebA",
    "ImageDataset",
    "InterventionPairs",
    "PairsDataset",
    "Pendulum",
    "SceneDataset",
    "Shapes",
    "StructuralData",
    "StructuralDataset",
    "celeba",
    "default_root",
    "mnist",
    "read_idx",
]
