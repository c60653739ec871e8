"""foresight: learning-curve extrapolation for hyperparameter tuning.

The predictor of the Rust crate ``foresight`` (parametric curve families
after Domhan, Springenberg & Hutter, IJCAI 2015, sampled with MCMC), from
Python::

    >>> import foresight
    >>> f = foresight.predict([0.42, 0.55, 0.61, 0.65, 0.67, 0.69, 0.70, 0.71], horizon=50)
    >>> lo, hi = f.quantile([0.05, 0.95])
    >>> bool(lo < f.mean() < hi)
    True
    >>> 0.0 <= f.prob_better(0.9) <= 1.0
    True

``foresight.optuna.LearningCurvePruner`` stops Optuna trials whose forecast
is unlikely to beat the study's best.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

from . import _foresight

__all__ = ["Forecast", "predict", "__version__"]
__version__: str = _foresight.__version__

ArrayLike = Union[Sequence[float], np.ndarray]


class Forecast:
    """The posterior over the rest of a learning curve.

    Every question takes an ``epoch`` (1-based, counted like the observed
    values: ``values[i]`` was observed after epoch ``i + 1``); the default is
    the horizon. The predictive at an epoch is a mixture of Gaussians in the
    predictor's model space (accuracy as is, a loss ``v`` as ``exp(-v / s)``
    with ``s`` its first value), reported in the metric's own units:

    * ``mean()``: the mixture mean mapped back (for a loss, the loss whose
      model value is the mean);
    * ``std()``: the mixture's standard deviation, scaled by the slope of the
      map at the mean (delta method);
    * ``quantile(q)``: exact quantiles (the map is monotone);
    * ``prob_better(v)``: the probability that the value at that epoch is
      better than ``v`` (larger for an accuracy, smaller for a loss);
    * ``samples(n)``: draws of the value, observation noise included.

    A *fallback* forecast (``is_fallback``: no curve family describes the
    values, e.g. a single point, a falling accuracy, or four epochs of a
    linear warm-up) is a Gaussian centred on the last value; it carries no
    extrapolation, but the band of an improving curve reaches where the
    curve would end at its present pace.
    """

    __slots__ = ("_inner", "metric")

    def __init__(self, inner: _foresight.Forecast, metric: str) -> None:
        self._inner = inner
        self.metric: str = metric

    @property
    def horizon(self) -> int:
        """The epoch the forecast was made for (the run's last)."""
        return self._inner.horizon

    @property
    def observed(self) -> int:
        """How many epochs were observed."""
        return self._inner.observed

    @property
    def families(self) -> list[str]:
        """The curve families that survived fitting (empty for a fallback)."""
        return list(self._inner.families)

    @property
    def is_fallback(self) -> bool:
        """No family described the curve: a Gaussian at the last value."""
        return self._inner.is_fallback

    def mean(self, epoch: Optional[int] = None) -> float:
        """Point prediction of the metric after ``epoch`` (default: the horizon)."""
        return self._inner.mean(epoch)

    def std(self, epoch: Optional[int] = None) -> float:
        """Spread of the metric after ``epoch`` (default: the horizon)."""
        return self._inner.std(epoch)

    def quantile(self, q: Union[float, ArrayLike], epoch: Optional[int] = None) -> Union[float, np.ndarray]:
        """The ``q``-quantile(s) of the metric after ``epoch``, ``q`` in (0, 1).

        A float for a float ``q``, an array of the same shape for an array.
        """
        qs = np.asarray(q, dtype=float)
        out = np.asarray(self._inner.quantiles(qs.ravel().tolist(), epoch)).reshape(qs.shape)
        return float(out) if out.ndim == 0 else out

    def prob_better(self, value: float, epoch: Optional[int] = None) -> float:
        """P(metric after ``epoch`` is better than ``value``)."""
        return self._inner.prob_better(float(value), epoch)

    def samples(self, n: int, epoch: Optional[int] = None, seed: int = 0) -> np.ndarray:
        """``n`` seeded draws of the metric after ``epoch`` (noise included)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        return np.asarray(self._inner.samples(int(n), int(seed), epoch), dtype=float)

    def __repr__(self) -> str:
        kind = "fallback" if self.is_fallback else ", ".join(self.families)
        return (
            f"Forecast({self.metric}, epoch {self.observed} -> {self.horizon}: "
            f"mean {self.mean():.4g}, std {self.std():.3g}; {kind})"
        )


def predict(
    values: ArrayLike,
    horizon: int,
    metric: str = "accuracy",
    *,
    seed: int = 0,
    parallel: bool = True,
) -> Forecast:
    """Forecast a learning curve from its first epochs.

    Args:
        values: the metric after each epoch so far, from the first (a list or
            a 1-D NumPy array; at least one value, all finite).
        horizon: the epoch to forecast up to (the run's last), at least
            ``len(values)``.
        metric: ``"accuracy"`` (larger is better, values in [0, 1]: accuracy,
            AUC, F1; rescale a percentage) or ``"loss"`` (smaller is better,
            values >= 0).
        seed: seeds every random choice of the MCMC: the same input and seed
            give the same forecast.
        parallel: sample the curve families on several threads.

    Returns:
        A :class:`Forecast`.

    Raises:
        ValueError: empty or non-finite values, a horizon shorter than the
            curve, values outside the metric's range, an unknown metric.

    The MCMC runs with the GIL released, so threads can forecast at once.
    """
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {arr.shape}")
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)):
        raise TypeError(f"horizon must be an int, got {type(horizon).__name__}")
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    inner = _foresight.predict(arr.tolist(), int(horizon), metric, int(seed), bool(parallel))
    return Forecast(inner, metric)
