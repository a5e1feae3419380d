"""Interventional consistency for any autoencoder.

A flat public API: the aggregate-posterior sampler, the one intervention, the XBlock, the
interpretation of encoder outputs, and the exceptions (all deriving from
:class:`ConsistencyError`).
"""

from ._version import __version__
from .encoding import posterior_mean
from .errors import (
    ConsistencyError,
    DataFileError,
    EmptySamplerError,
    EncoderOutputError,
    NonFiniteError,
    ShapeError,
)
from .intervention import intervene
from .sampler import SAMPLING_MODES, AggregatePosterior, SamplingMode
from .xblock import XBlock

__all__ = [
    "SAMPLING_MODES",
    "AggregatePosterior",
    "ConsistencyError",
    "DataFileError",
    "EmptySamplerError",
    "EncoderOutputError",
    "NonFiniteError",
    "SamplingMode",
    "ShapeError",
    "XBlock",
    "__version__",
    "intervene",
    "posterior_mean",
]
