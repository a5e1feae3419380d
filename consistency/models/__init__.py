"""The paper's models (optional layer: the core library never imports it)."""

from .skeleton import PRESETS, ConvBlock, ConvDecoder, ConvEncoder, Preset, pool_positions

__all__ = ["PRESETS", "ConvBlock", "ConvDecoder", "ConvEncoder", "Preset", "pool_positions"]
