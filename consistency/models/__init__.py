"""The paper's models (optional layer: the core library never imports it).

``build_model(family, preset, variant)`` builds AE / VAE / SAE / AVAE on the paper's conv
skeleton (presets S, Standard, S4 for MNIST; v32, v324 for CelebA), plain or with an XBlock
(X) and consistency training (XC-I, XC-E), or consistency training without the XBlock (C-I,
C-E).
"""

from .families import (
    CONSISTENCY_TRAINED,
    FAMILIES,
    VARIANTS,
    WITH_XBLOCK,
    LossTerms,
    PaperModel,
    Recipe,
    SAEDecoder,
    build_model,
    parameter_count,
)
from .skeleton import (
    PAPER_PARAMETER_COUNTS,
    PRESETS,
    ConvBlock,
    ConvDecoder,
    ConvEncoder,
    OutputBlock,
    Preset,
    pool_positions,
)

__all__ = [
    "CONSISTENCY_TRAINED",
    "FAMILIES",
    "PAPER_PARAMETER_COUNTS",
    "PRESETS",
    "VARIANTS",
    "WITH_XBLOCK",
    "ConvBlock",
    "ConvDecoder",
    "ConvEncoder",
    "LossTerms",
    "OutputBlock",
    "PaperModel",
    "Preset",
    "Recipe",
    "SAEDecoder",
    "build_model",
    "parameter_count",
    "pool_positions",
]
