"""Interventional consistency for any autoencoder.

A flat public API: the model handle (:class:`ResponseModel`), the aggregate-posterior
sampler, the one intervention, the XBlock, the consistency losses and scores, the recipe their
defaults come from (:data:`RECIPE`; the paper's choices: :data:`FAITHFUL`), and the exceptions
(all deriving from :class:`ConsistencyError`).
"""

from . import functional
from ._dist import rank_generator
from ._version import __version__
from .consistency_metric import ConsistencyMetric, MetricResult
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
from .intervention import Interventions, draw_interventions, intervene
from .losses import EquivarianceLoss, InvarianceLoss
from .module_state import evaluation_mode, frozen_batchnorm
from .pairs import PairedInterventionLoss
from .recipe import FAITHFUL, RECIPE, ConsistencyRecipe
from .report import ConsistencyReport, SelfConsistencyTable
from .response import ResponseModel, response
from .sampler import SAMPLING_MODES, AggregatePosterior, SamplingMode
from .xblock import GateMovement, XBlock

__all__ = [
    "FAITHFUL",
    "RECIPE",
    "SAMPLING_MODES",
    "AggregatePosterior",
    "ConsistencyError",
    "ConsistencyEvaluator",
    "ConsistencyMetric",
    "ConsistencyRecipe",
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
    "PairedInterventionLoss",
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
