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
    "NonFiniteError",
    "ShapeError",
]


class ConsistencyError(Exception):
    """Root of every error raised on purpose by :mod:`consistency`."""


class ShapeError(ConsistencyError, ValueError):
    """A tensor's rank or an axis size is not the one expected; the message names both."""


class NonFiniteError(ConsistencyError, ValueError):
    """A tensor holds NaN or infinite values; the message says how many and where."""


class EmptySamplerError(ConsistencyError, ValueError):
    """Samples were requested from an :class:`~consistency.AggregatePosterior` that holds none."""


class EncoderOutputError(ConsistencyError, TypeError):
    """An encoder returned something :func:`~consistency.posterior_mean` cannot interpret."""


class DataFileError(ConsistencyError, OSError):
    """A data file is missing, truncated or corrupt; the message names the file."""
