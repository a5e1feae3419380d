"""Interventional consistency for any autoencoder.

A flat public API: the aggregate-posterior sampler, the one intervention, the XBlock, the
interpretation of encoder outputs, and the exceptions (all deriving from
:class:`ConsistencyError`).
"""

from . import functional
from ._dist import rank_generator
from ._version import __version__
from .encoding import posterior_mean
from .errors import (
    ConsistencyError,
    DataFileError,
    EmptySamplerError,
    EncoderOutputError,
    InvalidTypeError,
    InvalidValueError,
    MissingFileError,
    NonFiniteError,
    ShapeError,
)
from .evaluator import ConsistencyEvaluator
from .handle import ResponseModel
from .intervention import intervene
from .losses import EquivarianceLoss, InvarianceLoss
from .metric import ConsistencyMetric, MetricResult
from .modes import evaluation_mode, frozen_batchnorm
from .report import ConsistencyReport, SelfConsistencyTable
from .response import Interventions, draw_interventions, response
from .sampler import SAMPLING_MODES, AggregatePosterior, SamplingMode
from .xblock import GateMovement, XBlock

__all__ = [
    "SAMPLING_MODES",
    "AggregatePosterior",
    "ConsistencyError",
    "ConsistencyEvaluator",
    "ConsistencyMetric",
    "ConsistencyReport",
    "DataFileError",
    "EmptySamplerError",
    "EncoderOutputError",
    "EquivarianceLoss",
    "GateMovement",
    "Interventions",
    "InvalidTypeError",
    "InvalidValueError",
    "InvarianceLoss",
    "MetricResult",
    "MissingFileError",
    "NonFiniteError",
    "ResponseModel",
    "SamplingMode",
    "SelfConsistencyTable",
    "ShapeError",
    "XBlock",
    "__version__",
    "draw_interventions",
    "evaluation_mode",
    "frozen_batchnorm",
    "functional",
    "intervene",
    "posterior_mean",
    "rank_generator",
    "response",
]
