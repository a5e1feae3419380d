"""The scores that hold one factor fixed over a batch of generated data: the BetaVAE score
(Higgins et al. 2017) and the FactorVAE score (Kim & Mnih 2018), as ``disentanglement_lib``
computes them. They need a source that renders data from chosen factor values (the library's
``StructuralData`` sets do) and an encoder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._checks import check_positive_int
from ..errors import InvalidTypeError, InvalidValueError
from ._common import _sklearn, encode_all


@dataclass
class FactorVAEScore:
    """The FactorVAE score (Kim & Mnih 2018, "Disentangling by factorising", Sec. 4).

    Attributes:
        eval_accuracy: the majority-vote classifier's accuracy on the evaluation votes.
        train_accuracy: its accuracy on the votes it was built from.
        active_dims: how many latents have a standard deviation of at least the threshold.
        votes: ``(F, n)`` training votes: factor ``k`` fixed, latent ``j`` of least variance.
    """

    eval_accuracy: float
    train_accuracy: float
    active_dims: int
    votes: Tensor


@dataclass
class BetaVAEScore:
    """The BetaVAE score (Higgins et al. 2017, "beta-VAE: learning basic visual concepts with a
    constrained variational framework", Sec. 3).

    Attributes:
        eval_accuracy: a logistic regression's accuracy at telling the fixed factor from the
            mean absolute difference of paired codes, on the evaluation points.
        train_accuracy: its accuracy on the training points.
    """

    eval_accuracy: float
    train_accuracy: float


def _num_factors(source: Any) -> int:
    names = getattr(source, "names", None)
    if names is not None:
        return len(names)
    count = getattr(source, "num_factors", None)
    if isinstance(count, int):
        return count
    raise InvalidTypeError(
        "source must have factor names (a consistency.data StructuralData) or num_factors; got "
        f"{type(source).__name__}"
    )


def _draw_factors(source: Any, k: int) -> np.ndarray:
    """``(k, F)`` factor values drawn from the source's own distribution."""
    if hasattr(source, "sample_factors"):
        out = source.sample_factors(k)
    elif hasattr(source, "sample_noise") and hasattr(source, "factors_from_noise"):
        out = source.factors_from_noise(source.sample_noise(k))
    else:
        raise InvalidTypeError(
            "source must sample factors: sample_factors(k), or sample_noise(k) and "
            f"factors_from_noise(noise) (a consistency.data StructuralData); got {type(source).__name__}"
        )
    return np.array(
        out.detach().cpu().numpy() if isinstance(out, Tensor) else out, dtype=np.float64
    )


def _check_source(source: Any) -> int:
    if not callable(getattr(source, "render", None)):
        raise InvalidTypeError(
            f"source must render(factors) to data; {type(source).__name__} has no render method"
        )
    return _num_factors(source)


def _codes(
    encoder: Callable[[Tensor], Any],
    source: Any,
    factors: np.ndarray,
    max_batch: int,
    device: torch.device | str | None,
) -> Tensor:
    images = source.render(factors)
    return encode_all(encoder, images, max_batch=max_batch, device=device).double()


def _chunks(total: int, size: int) -> list[int]:
    return [min(size, total - s) for s in range(0, total, size)]


def factor_vae_score(
    encoder: Callable[[Tensor], Any],
    source: Any,
    *,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    num_variance_estimate: int = 10_000,
    prune_threshold: float = 0.05,
    seed: int = 0,
    max_batch: int = 512,
    points_per_chunk: int = 64,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> FactorVAEScore:
    r"""The FactorVAE score: how well a majority vote recovers which factor was held fixed
    from the latent of least (normalised) variance.

    The latents' variances over ``num_variance_estimate`` samples normalise each latent;
    latents with a standard deviation below ``prune_threshold`` are left out (disentanglement_lib's
    0.05; disent uses 0). Each point draws a factor :math:`k`, ``batch_size`` factor vectors
    with factor :math:`k` set to the first one's value, renders and encodes them, and votes for
    :math:`(k, \arg\min_j \mathrm{Var}(z_j) / \mathrm{Var}_{\text{global}}(z_j))`. The
    classifier maps each latent to the factor with most votes; the score is its accuracy on
    ``num_eval`` fresh points. The factors come from the source's own random generator, the
    choice of factor from ``numpy.random.default_rng(seed)``.

    Args:
        encoder: images ``(B, ...)`` -> codes (any output :func:`~consistency.posterior_mean`
            reads); its train/eval mode is left as it is.
        source: renders data from factors: ``render(factors)`` and ``sample_factors(k)`` or
            (a ``consistency.data`` ``StructuralData``) ``sample_noise`` /
            ``factors_from_noise``.
        batch_size: samples per point (disentanglement_lib: 64).
        num_train: points that build the classifier (10,000).
        num_eval: points that score it (5,000).
        num_variance_estimate: samples of the global variances (10,000).
        prune_threshold: least standard deviation of an active latent.
        seed: the factor choices' seed.
        max_batch: largest batch sent through the encoder.
        points_per_chunk: points rendered and encoded together.
        device: where the encoder runs (default: where the rendered images are).
        progress: a progress bar over the points.

    Example:
        >>> import numpy as np, torch
        >>> class Grid:  # three independent factors; the "data" are the factors themselves
        ...     num_factors, rng = 3, np.random.default_rng(0)
        ...     def sample_factors(self, k):
        ...         return self.rng.integers(0, 5, (k, 3)).astype(float)
        ...     def render(self, factors):
        ...         return torch.as_tensor(factors, dtype=torch.float32)
        >>> code = lambda x: -2 * x[:, [2, 0, 1]]  # a permuted, rescaled perfect code
        >>> score = factor_vae_score(code, Grid(), num_train=200, num_eval=100,
        ...                          num_variance_estimate=500)
        >>> score.eval_accuracy, beta_vae_score(code, Grid(), num_train=200, num_eval=100).eval_accuracy
        (1.0, 1.0)
    """
    f_count = _check_source(source)
    for name, value in (("batch_size", batch_size), ("num_train", num_train),
                        ("num_eval", num_eval), ("num_variance_estimate", num_variance_estimate)):  # fmt: skip
        check_positive_int(value, name, 2 if name in ("batch_size", "num_variance_estimate") else 1)
    rng = np.random.default_rng(seed)
    global_var = _codes(
        encoder, source, _draw_factors(source, num_variance_estimate), max_batch, device
    ).var(0, correction=1)
    active = global_var.sqrt() >= prune_threshold
    n = global_var.shape[0]
    if not bool(active.any()):
        zero = torch.zeros(f_count, n, dtype=torch.long)
        return FactorVAEScore(0.0, 0.0, 0, zero)
    active_idx = active.nonzero().flatten()

    def votes(points: int) -> Tensor:
        out = torch.zeros(f_count, n, dtype=torch.long)
        bar = _bar(points, progress, "FactorVAE")
        for c in _chunks(points, points_per_chunk):
            fixed = rng.integers(f_count, size=c)
            factors = _draw_factors(source, c * batch_size).reshape(c, batch_size, f_count)
            rows = np.arange(c)
            factors[rows, :, fixed] = factors[rows, 0, fixed][:, None]
            z = _codes(encoder, source, factors.reshape(-1, f_count), max_batch, device)
            local = z.view(c, batch_size, n).var(1, correction=1)
            ratio = local[:, active_idx.to(local.device)] / global_var[active_idx].to(local.device)
            least = active_idx[ratio.argmin(1).cpu()]
            out.index_put_(
                (torch.as_tensor(fixed), least), torch.ones(c, dtype=torch.long), accumulate=True
            )
            if bar is not None:
                bar.update(c)
        if bar is not None:
            bar.close()
        return out

    train = votes(num_train)
    classifier = train.argmax(0)  # latent j -> the factor it votes for most
    columns = torch.arange(n)
    train_acc = float(train[classifier, columns].sum()) / float(train.sum())
    evaluation = votes(num_eval)
    eval_acc = float(evaluation[classifier, columns].sum()) / float(evaluation.sum())
    return FactorVAEScore(eval_acc, train_acc, int(active.sum()), train)


def beta_vae_score(
    encoder: Callable[[Tensor], Any],
    source: Any,
    *,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    seed: int = 0,
    max_batch: int = 512,
    points_per_chunk: int = 64,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> BetaVAEScore:
    r"""The BetaVAE score: how well a linear classifier tells which factor two batches share
    from the mean absolute difference of their codes.

    Each point draws a factor :math:`k` and two batches of ``batch_size`` factor vectors, the
    second with factor :math:`k` copied from the first, renders and encodes both, and keeps
    :math:`\frac{1}{B}\sum_b |z^{(1)}_b - z^{(2)}_b|` ``(n,)`` with the label :math:`k`.
    scikit-learn's ``LogisticRegression(random_state=seed)`` is fit on ``num_train`` points
    (CPU); the score is its accuracy on ``num_eval`` fresh points. The factors come from the
    source's own random generator, the choice of factor from ``numpy.random.default_rng(seed)``.

    Args:
        encoder: images ``(B, ...)`` -> codes; its train/eval mode is left as it is.
        source: renders data from factors (as :func:`factor_vae_score`).
        batch_size: pairs per point (disentanglement_lib: 64).
        num_train: training points (10,000).
        num_eval: evaluation points (5,000).
        seed: the factor choices' and the classifier's seed.
        max_batch: largest batch sent through the encoder.
        points_per_chunk: points rendered and encoded together.
        device: where the encoder runs (default: where the rendered images are).
        progress: a progress bar over the points.
    """
    f_count = _check_source(source)
    for name, value in (
        ("batch_size", batch_size),
        ("num_train", num_train),
        ("num_eval", num_eval),
    ):
        check_positive_int(value, name)
    _sklearn("beta_vae_score")
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped,unused-ignore]

    rng = np.random.default_rng(seed)

    def points(total: int) -> tuple[np.ndarray, np.ndarray]:
        features, labels = [], []
        bar = _bar(total, progress, "BetaVAE")
        for c in _chunks(total, points_per_chunk):
            fixed = rng.integers(f_count, size=c)
            first = _draw_factors(source, c * batch_size).reshape(c, batch_size, f_count)
            second = _draw_factors(source, c * batch_size).reshape(c, batch_size, f_count)
            rows = np.arange(c)
            second[rows, :, fixed] = first[rows, :, fixed]
            both = np.concatenate([first.reshape(-1, f_count), second.reshape(-1, f_count)])
            z = _codes(encoder, source, both, max_batch, device)
            z1, z2 = z[: c * batch_size], z[c * batch_size :]
            diff = (z1 - z2).abs().view(c, batch_size, -1).mean(1)
            features.append(diff.cpu().numpy())
            labels.append(fixed)
            if bar is not None:
                bar.update(c)
        if bar is not None:
            bar.close()
        return np.concatenate(features), np.concatenate(labels)

    x_train, y_train = points(num_train)
    if len(set(y_train.tolist())) < 2:
        raise InvalidValueError(
            f"the {num_train} training points drew a single factor; the classifier needs at "
            "least two (raise num_train)"
        )
    model = LogisticRegression(random_state=seed).fit(x_train, y_train)
    train_acc = float(np.mean(model.predict(x_train) == y_train))
    x_eval, y_eval = points(num_eval)
    return BetaVAEScore(float(model.score(x_eval, y_eval)), train_acc)


def _bar(total: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, desc=desc, unit="point")
