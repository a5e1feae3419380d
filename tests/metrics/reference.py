"""Implementations no one here wrote, and the published formulas transcribed literally.

``disent_metrics()`` loads disent's own ``metrics/_mig.py``, ``_dci.py``, ``_sap.py``,
``_factor_vae.py``, ``_unsupervised.py`` and ``utils.py`` (disent 0.8.0, installed with
``pip install --no-deps disent``). Importing ``disent`` the normal way pulls
in torchvision and lightning (its dataset and framework layers), and PyPI's torchvision does not
import beside the CPU torch build used here; the metric functions need neither. So the three files
are executed as they are, with the package's import-only plumbing (``DisentDataset`` for type hints,
``to_numpy``, ``wrapped_partial`` for its metric decorator) replaced by stand-ins. The numbers come
from disent's code: histogram discretisation, ``sklearn.metrics.mutual_info_score``,
``GradientBoostingClassifier``, ``scipy.stats.entropy``.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

MODULES = ("utils", "_mig", "_dci", "_sap", "_factor_vae", "_unsupervised")


def disent_metrics() -> dict[str, Any] | None:
    """disent's metric modules ``{"utils", "_mig", "_dci", "_sap", "_factor_vae",
    "_unsupervised"}``, or None if disent or sklearn is absent."""
    try:
        import scipy.stats  # noqa: F401
        import sklearn.metrics  # noqa: F401
    except ImportError:
        return None
    try:  # a machine where disent imports normally
        import importlib as _importlib

        return {name: _importlib.import_module(f"disent.metrics.{name}") for name in MODULES}
    except Exception:
        pass
    spec = importlib.util.find_spec("disent")
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).parent
    saved = {k: v for k, v in sys.modules.items() if k == "disent" or k.startswith("disent.")}
    pkg = types.ModuleType("disent")
    pkg.__path__ = [str(root)]
    metrics = types.ModuleType("disent.metrics")
    metrics.__path__ = [str(root / "metrics")]
    dataset = types.ModuleType("disent.dataset")
    dataset.DisentDataset = object  # type: ignore[attr-defined]
    util = types.ModuleType("disent.util")
    util.to_numpy = np.asarray  # type: ignore[attr-defined]
    function = types.ModuleType("disent.util.function")
    function.wrapped_partial = lambda f, *a, **k: functools.update_wrapper(  # type: ignore[attr-defined]
        functools.partial(f, *a, **k), f
    )
    stand_ins = {
        "disent": pkg,
        "disent.metrics": metrics,
        "disent.dataset": dataset,
        "disent.util": util,
        "disent.util.function": function,
    }
    out: dict[str, Any] = {}
    try:
        sys.modules.update(stand_ins)
        for name in MODULES:
            s = importlib.util.spec_from_file_location(
                f"disent.metrics.{name}", root / "metrics" / f"{name}.py"
            )
            assert s is not None and s.loader is not None
            module = importlib.util.module_from_spec(s)
            sys.modules[s.name] = module
            s.loader.exec_module(module)
            setattr(metrics, name, module)
            out[name] = module
    finally:  # leave sys.modules as found
        for k in [k for k in sys.modules if k == "disent" or k.startswith("disent.")]:
            del sys.modules[k]
        sys.modules.update(saved)
    return out


def irs_published(factors: np.ndarray, codes: np.ndarray, diff_quantile: float = 0.99) -> dict:
    """IRS as disentanglement_lib's ``irs.py`` writes it (Suter et al. 2019), loops and numpy:
    factors discretised by 20-bin histograms, constant codes dropped, then
    ``scalable_disentanglement_score``. ``factors`` ``(F, N)``, ``codes`` ``(n, N)``."""
    discrete = np.zeros_like(factors, dtype=np.int64)
    for i in range(factors.shape[0]):
        discrete[i] = np.digitize(factors[i], np.histogram(factors[i], 20)[1][:-1])
    active = codes[codes.std(axis=1) > 0.0]
    if not active.any():
        return {"avg_score": 0.0}
    gen_factors, latents = discrete.T, active.T
    num_gen, num_lat = gen_factors.shape[1], latents.shape[1]
    max_deviations = np.max(np.abs(latents - latents.mean(axis=0)), axis=0)
    cum_deviations = np.zeros([num_lat, num_gen])
    for i in range(num_gen):
        unique_factors = np.unique(gen_factors[:, i], axis=0)
        for k in range(unique_factors.shape[0]):
            match = gen_factors[:, i] == unique_factors[k]
            e_loc = np.mean(latents[match, :], axis=0)
            diffs = np.abs(latents[match, :] - e_loc)
            cum_deviations[:, i] += np.percentile(diffs, q=diff_quantile * 100, axis=0)
        cum_deviations[:, i] /= unique_factors.shape[0]
    irs_matrix = 1.0 - cum_deviations / max_deviations[:, np.newaxis]
    scores = irs_matrix.max(axis=1)
    avg = (
        np.average(scores, weights=max_deviations)
        if np.sum(max_deviations) > 0.0
        else np.mean(scores)
    )
    return {"avg_score": avg, "IRS_matrix": irs_matrix, "parents": irs_matrix.argmax(axis=1)}


class DisentStandIn:
    """What disent's metric functions read of a ``DisentDataset``, backed by arrays or by a
    source that renders factors (``render``) and samples them (``sample_factors``):

    * ``dataset_sample_batch_with_factors(k, mode)``: the next ``k`` rows of fixed
      ``observations`` / ``factors`` (so a metric run sees exactly the given data);
    * ``gt_data.num_factors``, ``gt_data.sample_factors(k)``, ``dataset_batch_from_factors``
      and ``dataset_sample_batch``: drawn from ``source`` (FactorVAE).
    """

    def __init__(
        self,
        observations: np.ndarray | None = None,
        factors: np.ndarray | None = None,
        source: Any = None,
    ) -> None:
        self.observations, self.factors, self.source = observations, factors, source
        self.position = 0
        if source is not None:
            self.gt_data = types.SimpleNamespace(
                num_factors=source.num_factors, sample_factors=source.sample_factors
            )

    def dataset_sample_batch_with_factors(self, k: int, mode: str) -> tuple[Any, Any]:
        assert self.observations is not None and self.factors is not None
        s = slice(self.position, self.position + k)
        self.position += k
        return self.observations[s], self.factors[s]

    def dataset_batch_from_factors(self, factors: np.ndarray, mode: str) -> Any:
        return self.source.render(factors)

    def dataset_sample_batch(self, k: int, mode: str) -> Any:
        return self.source.render(self.source.sample_factors(k))


def beta_vae_transcribed(
    ground_truth_data: Any,
    representation_function: Any,
    random_state: np.random.RandomState,
    batch_size: int,
    num_train: int,
    num_eval: int,
) -> dict[str, float]:
    """disentanglement_lib's ``beta_vae.py`` (``compute_beta_vae_sklearn`` and its two helpers),
    transcribed line by line without gin and logging."""
    from sklearn import linear_model

    def sample(batch: int) -> tuple[int, np.ndarray]:
        index = random_state.randint(ground_truth_data.num_factors)
        factors1 = ground_truth_data.sample_factors(batch, random_state)
        factors2 = ground_truth_data.sample_factors(batch, random_state)
        factors2[:, index] = factors1[:, index]
        observation1 = ground_truth_data.sample_observations_from_factors(factors1, random_state)
        observation2 = ground_truth_data.sample_observations_from_factors(factors2, random_state)
        representation1 = representation_function(observation1)
        representation2 = representation_function(observation2)
        feature_vector = np.mean(np.abs(representation1 - representation2), axis=0)
        return index, feature_vector

    def batch_of(num_points: int) -> tuple[np.ndarray, np.ndarray]:
        points = None
        labels = np.zeros(num_points, dtype=np.int64)
        for i in range(num_points):
            labels[i], feature_vector = sample(batch_size)
            if points is None:
                points = np.zeros((num_points, feature_vector.shape[0]))
            points[i, :] = feature_vector
        assert points is not None
        return points, labels

    train_points, train_labels = batch_of(num_train)
    model = linear_model.LogisticRegression(random_state=random_state)
    model.fit(train_points, train_labels)
    train_accuracy = np.mean(model.predict(train_points) == train_labels)
    eval_points, eval_labels = batch_of(num_eval)
    eval_accuracy = model.score(eval_points, eval_labels)
    return {"train_accuracy": float(train_accuracy), "eval_accuracy": float(eval_accuracy)}


def modularity_explicitness_transcribed(
    mus_train: np.ndarray, ys_train: np.ndarray, mus_test: np.ndarray, ys_test: np.ndarray
) -> dict[str, float]:
    """disentanglement_lib's ``modularity_explicitness.py`` after its data generation
    (``compute_modularity_explicitness`` from ``make_discretizer`` on, ``explicitness_per_factor``,
    ``modularity``), transcribed line by line; codes ``(n, N)``, factors ``(F, N)``, as there.
    ``make_discretizer`` is its default, ``histogram_discretize`` with 20 bins."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import mutual_info_score, roc_auc_score
    from sklearn.preprocessing import MultiLabelBinarizer

    def histogram_discretize(target: np.ndarray, num_bins: int = 20) -> np.ndarray:
        discretized = np.zeros_like(target)
        for i in range(target.shape[0]):
            discretized[i, :] = np.digitize(
                target[i, :], np.histogram(target[i, :], num_bins)[1][:-1]
            )
        return discretized

    def discrete_mutual_info(mus: np.ndarray, ys: np.ndarray) -> np.ndarray:
        m = np.zeros([mus.shape[0], ys.shape[0]])
        for i in range(mus.shape[0]):
            for j in range(ys.shape[0]):
                m[i, j] = mutual_info_score(ys[j, :], mus[i, :])
        return m

    def normalize_data(data: np.ndarray, mean: Any = None, stddev: Any = None) -> Any:
        if mean is None:
            mean = np.mean(data, axis=1)
        if stddev is None:
            stddev = np.std(data, axis=1)
        return (data - mean[:, np.newaxis]) / stddev[:, np.newaxis], mean, stddev

    def explicitness_per_factor(mus_train: Any, y_train: Any, mus_test: Any, y_test: Any) -> Any:
        x_train = np.transpose(mus_train)
        x_test = np.transpose(mus_test)
        clf = LogisticRegression().fit(x_train, y_train)
        y_pred_train = clf.predict_proba(x_train)
        y_pred_test = clf.predict_proba(x_test)
        mlb = MultiLabelBinarizer()
        roc_train = roc_auc_score(mlb.fit_transform(np.expand_dims(y_train, 1)), y_pred_train)
        roc_test = roc_auc_score(mlb.fit_transform(np.expand_dims(y_test, 1)), y_pred_test)
        return roc_train, roc_test

    def modularity(mutual_information: np.ndarray) -> float:
        squared_mi = np.square(mutual_information)
        max_squared_mi = np.max(squared_mi, axis=1)
        numerator = np.sum(squared_mi, axis=1) - max_squared_mi
        denominator = max_squared_mi * (squared_mi.shape[1] - 1.0)
        delta = numerator / denominator
        modularity_score = 1.0 - delta
        index = max_squared_mi == 0.0
        modularity_score[index] = 0.0
        return float(np.mean(modularity_score))

    scores = {}
    discretized_mus = histogram_discretize(mus_train)
    mutual_information = discrete_mutual_info(discretized_mus, ys_train)
    scores["modularity_score"] = modularity(mutual_information)
    explicitness_score_train = np.zeros([ys_train.shape[0], 1])
    explicitness_score_test = np.zeros([ys_test.shape[0], 1])
    mus_train_norm, mean_mus, stddev_mus = normalize_data(mus_train)
    mus_test_norm, _, _ = normalize_data(mus_test, mean_mus, stddev_mus)
    for i in range(ys_train.shape[0]):
        explicitness_score_train[i], explicitness_score_test[i] = explicitness_per_factor(
            mus_train_norm, ys_train[i, :], mus_test_norm, ys_test[i, :]
        )
    scores["explicitness_score_train"] = float(np.mean(explicitness_score_train))
    scores["explicitness_score_test"] = float(np.mean(explicitness_score_test))
    return scores
