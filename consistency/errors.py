"""The exceptions of :mod:`consistency`.

Every error the library raises on purpose derives from :class:`ConsistencyError`, and also from
the built-in exception a user would expect (``ValueError`` for a bad value or shape, ``TypeError``
for a bad type), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = [
    "ConsistencyError",
    "DataFileError",
    "EmptySamplerError",
    "EncoderOutputError",
    "InvalidTypeError",
    "InvalidValueError",
    "MissingFileError",
    "NonFiniteError",
    "ShapeError",
]


class ConsistencyError(Exception):
    """Root of every error raised on purpose by :mod:`consistency`."""


class InvalidValueError(ConsistencyError, ValueError):
    """An argument has a value the library cannot use (a non-positive size, an unknown mode or
    convention, an out-of-range weight, ...); the message names the argument and the value."""


class InvalidTypeError(ConsistencyError, TypeError):
    """An argument has a type the library cannot use; the message names the argument and the
    type that came."""


class ShapeError(InvalidValueError):
    """A tensor's rank or an axis size is not the one expected; the message names both."""


class NonFiniteError(InvalidValueError):
    """A tensor holds NaN or infinite values; the message says how many and where."""


class EmptySamplerError(InvalidValueError):
    """Samples were requested from an :class:`~consistency.AggregatePosterior` that holds none."""


class EncoderOutputError(InvalidTypeError):
    """An encoder returned something :func:`~consistency.posterior_mean` cannot interpret."""


class DataFileError(ConsistencyError, OSError):
    """A data or checkpoint file is missing, truncated or corrupt; the message names the file."""


class MissingFileError(DataFileError, FileNotFoundError):
    """A file that must exist (a checkpoint to resume from, a data file) does not."""
