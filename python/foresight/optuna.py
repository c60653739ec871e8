"""Learning-curve pruning for Optuna.

:class:`LearningCurvePruner` stops a trial when the forecast of its value at
the last step says it is unlikely to beat the study's best: the stopping
rule of Domhan, Springenberg & Hutter (IJCAI 2015, Section 4), with
foresight's predictor. Optuna's own pruners (median, successive halving,
Hyperband) compare a trial's value *now* with other trials' values at the
same step; this one looks ahead, so a slow starter that is heading past the
best is kept and a fast starter that is levelling off below it is stopped.

    import optuna
    from foresight.optuna import LearningCurvePruner

    study = optuna.create_study(direction="maximize",
                                pruner=LearningCurvePruner(horizon=50))

    def objective(trial):
        ...
        for epoch in range(50):
            accuracy = train_one_epoch(...)
            trial.report(accuracy, step=epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return accuracy

Optuna is imported by this module only; ``import foresight`` does not need it.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Optional, Tuple, Union

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial

from . import _foresight, predict

__all__ = ["LearningCurvePruner"]

Metric = Union[str, Tuple[Optional[float], Optional[float]]]


class LearningCurvePruner(BasePruner):
    """Prune a trial whose forecast final value is unlikely to beat the best.

    After each reported step the trial's intermediate values are forecast up
    to ``horizon`` and the trial is pruned when

        P(value at horizon better than the study's best | values so far) < threshold.

    Guards, as in foresight's Rust policy (``foresight::curve::StoppingRule``):
    no pruning before ``min_steps`` values have been reported, while the study
    has no completed trial, or when the trial has already beaten the best at
    some step. A forecast that no curve family supports (a *fallback*: too few
    or too erratic values, a falling accuracy) never prunes. A NaN or infinite
    value prunes at once (the run diverged), as Optuna's median pruner does.

    Args:
        horizon: the last step a trial reports (``epochs - 1`` when steps
            count from 0, ``epochs`` when they count from 1).
        metric: what the reported values are, so that they can be mapped onto
            the curve families' units:

            * ``None`` (default): from the study's direction, ``"accuracy"``
              when it maximises and ``"loss"`` when it minimises;
            * ``"accuracy"``: maximised, in [0, 1];
            * ``"loss"``: minimised, >= 0;
            * ``(low, high)``: the range of any other metric, either bound
              ``None`` where it has none; the bound on the good side is
              required (``(0, 100)`` for a percentage, ``(0, 1)`` for a
              minimised error rate, ``(None, 0)`` for a maximised
              log-likelihood).
        threshold: prune when the probability of beating the best is below it
            (0.05 in the paper).
        min_steps: never prune before this many values were reported.
        every: forecast only at every ``every``-th step from ``min_steps`` on
            (the others never prune); raise it when a forecast costs more than
            a step.
        seed: seeds every forecast (mixed with the trial number and the step
            count), so that a study is reproducible.

    Steps need not be 0..n: they are placed on the grid of their greatest
    common divisor (steps 10, 20, 30 are epochs 1, 2, 3 of a run whose
    ``horizon`` is, say, 100), missing steps are interpolated linearly, and a
    trial whose first report comes late is forecast from its first report.
    Forecasts are cached per trial and step, so ``should_prune()`` called
    again at the same step (or from another thread with Optuna's ``n_jobs``)
    costs a probability, not an MCMC run; the MCMC releases the GIL, so
    threaded trials forecast in parallel.
    """

    def __init__(
        self,
        horizon: int,
        metric: Optional[Metric] = None,
        *,
        threshold: float = 0.05,
        min_steps: int = 3,
        every: int = 1,
        seed: int = 0,
    ) -> None:
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
            raise ValueError(f"horizon must be a positive int, got {horizon!r}")
        if not (0.0 < threshold < 1.0):
            raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
        if min_steps < 1:
            raise ValueError(f"min_steps must be >= 1, got {min_steps}")
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        _check_metric(metric)
        self.horizon = int(horizon)
        self.metric = metric
        self.threshold = float(threshold)
        self.min_steps = int(min_steps)
        self.every = int(every)
        self.seed = int(seed)
        self._lock = threading.Lock()
        # trial id -> ((first step, last step, count), forecast, units), most recent last.
        self._cache: "OrderedDict[int, tuple]" = OrderedDict()
        self._cache_size = 256

    def prune(self, study: Study, trial: FrozenTrial) -> bool:
        steps, ys = _curve(trial)
        if not steps:
            return False
        if not np.all(np.isfinite(ys)):
            return True
        n = len(steps)
        if n < self.min_steps or (n - self.min_steps) % self.every != 0:
            return False
        best = _best(study)
        if best is None:
            return False
        maximize = study.direction == StudyDirection.MAXIMIZE
        if np.any(ys > best) if maximize else np.any(ys < best):
            return False
        p = self._p_better(trial, steps, ys, best, maximize)
        return p is not None and p < self.threshold

    def probability(self, study: Study, trial: FrozenTrial) -> Optional[float]:
        """P(the trial's value at ``horizon`` beats the study's best), from its
        values so far; ``None`` without values, a completed trial or a
        forecast (a fallback). For plots and logs; pruning uses the same number."""
        steps, ys = _curve(trial)
        best = _best(study)
        if not steps or best is None:
            return None
        if not np.all(np.isfinite(ys)):
            return 0.0
        return self._p_better(trial, steps, ys, best, study.direction == StudyDirection.MAXIMIZE)

    def _p_better(self, trial: FrozenTrial, steps: list, ys: np.ndarray, best: float, maximize: bool) -> Optional[float]:
        """P(better than ``best``) from the (cached) forecast; ``None`` for a fallback."""
        forecast, (_, offset, width) = self._forecast(trial, steps, ys, maximize)
        if forecast.is_fallback:
            return None
        return forecast.prob_better((best - offset) / width)

    def _forecast(self, trial: FrozenTrial, steps: list, ys: np.ndarray, maximize: bool):
        key = (steps[0], steps[-1], len(steps))
        with self._lock:
            hit = self._cache.get(trial._trial_id)
            if hit is not None and hit[0] == key:
                self._cache.move_to_end(trial._trial_id)
                return hit[1], hit[2]
        units = _units(self.metric, maximize)
        name, offset, width = units
        curve, horizon = _on_grid(steps, (ys - offset) / width, self.horizon)
        seed = hash((self.seed, trial.number, len(steps))) & 0xFFFF_FFFF_FFFF_FFFF
        forecast = predict(curve, horizon, name, seed=seed)
        with self._lock:
            self._cache[trial._trial_id] = (key, forecast, units)
            self._cache.move_to_end(trial._trial_id)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return forecast, units


def _curve(trial: FrozenTrial) -> Tuple[list, np.ndarray]:
    """The trial's reported steps in order, and their values."""
    values = trial.intermediate_values
    steps = sorted(values)
    return steps, np.array([values[s] for s in steps], dtype=float)


def _best(study: Study) -> Optional[float]:
    """The study's best value; ``None`` before a trial has completed."""
    try:
        return study.best_value
    except ValueError:
        return None


def _check_metric(metric: Optional[Metric]) -> None:
    if metric is None or metric in ("accuracy", "loss"):
        return
    if isinstance(metric, tuple) and len(metric) == 2:
        for b in metric:
            if b is not None and not (isinstance(b, (int, float)) and math.isfinite(b)):
                raise ValueError(f"metric bounds must be finite numbers or None, got {metric!r}")
        return
    raise ValueError(
        f"metric must be None, 'accuracy', 'loss' or a (low, high) range, got {metric!r}"
    )


def _units(metric: Optional[Metric], maximize: bool) -> Tuple[str, float, float]:
    """(predictor metric, offset, width): ``u = (v - offset) / width``."""
    if metric is None:
        metric = "accuracy" if maximize else "loss"
    if metric == "accuracy":
        if not maximize:
            raise ValueError(
                "metric='accuracy' is maximised but the study minimises; for a minimised "
                "error rate in [0, 1] give its range, metric=(0, 1)"
            )
        low, high = 0.0, 1.0
    elif metric == "loss":
        if maximize:
            raise ValueError(
                "metric='loss' is minimised but the study maximises; for a maximised "
                "metric give its range, e.g. metric=(None, 0) for a log-likelihood"
            )
        low, high = 0.0, None
    else:
        low, high = metric  # type: ignore[misc]
    return _foresight.curve_units(maximize, low, high)


def _on_grid(steps: list, us: np.ndarray, horizon: int) -> Tuple[np.ndarray, int]:
    """The values on the grid of the steps' greatest common divisor ``d``,
    from the first reported step (missing steps interpolated), and the
    horizon in grid points from there."""
    if steps[-1] > horizon:
        raise ValueError(
            f"step {steps[-1]} was reported, beyond the pruner's horizon {horizon}: "
            "horizon is the last step a trial reports"
        )
    d = 0
    for s in steps:
        d = math.gcd(d, int(s))
    d = d or 1
    if horizon % d:
        d = math.gcd(d, horizon)
    first = steps[0]
    grid = np.arange(first, steps[-1] + 1, d)
    curve = np.interp(grid, np.asarray(steps, dtype=float), us) if len(grid) != len(steps) else us
    return curve, (horizon - first) // d + 1

