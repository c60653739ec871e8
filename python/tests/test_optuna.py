"""foresight.optuna.LearningCurvePruner in real Optuna studies."""
import math

import numpy as np
import optuna
import pytest

import foresight.optuna as fo
from foresight.optuna import LearningCurvePruner

optuna.logging.set_verbosity(optuna.logging.WARNING)
EPOCHS = 30


def accuracy(a, tau, epoch):
    """A saturating accuracy curve: asymptote a, time constant tau (epoch from 1)."""
    return a * (1.0 - math.exp(-epoch / tau))


def curves_study(direction, pruner, n_trials, value, steps, n_jobs=1, seed=0):
    """A study whose trials report value(a, tau, step) at `steps` and return
    the last; the full curve of every trial is kept to judge the stops."""
    finals = {}

    def objective(trial):
        a = trial.suggest_float("a", 0.3, 0.95)
        tau = trial.suggest_float("tau", 2.0, 8.0)
        finals[trial.number] = value(a, tau, steps[-1])
        for s in steps:
            trial.report(value(a, tau, s), step=s)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value(a, tau, steps[-1])

    study = optuna.create_study(
        direction=direction, pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=seed)
    )
    study.optimize(objective, n_trials=n_trials, n_jobs=n_jobs)
    return study, finals


def states(study):
    return [t.state for t in study.trials]


def pruned_wrongly(study, finals, maximize):
    """Pruned trials whose full curve would have beaten the final best."""
    best = study.best_value
    return [
        t.number
        for t in study.trials
        if t.state == optuna.trial.TrialState.PRUNED
        and (finals[t.number] > best if maximize else finals[t.number] < best)
    ]


def test_a_maximised_study_runs_to_the_end_with_trials_pruned():
    steps = list(range(EPOCHS))  # Optuna's usual 0-based steps
    study, finals = curves_study(
        "maximize", LearningCurvePruner(horizon=EPOCHS - 1), 30,
        lambda a, tau, s: accuracy(a, tau, s + 1), steps,
    )
    assert len(study.trials) == 30
    pruned = states(study).count(optuna.trial.TrialState.PRUNED)
    assert pruned >= 8, pruned
    assert all(s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for s in states(study))
    assert pruned_wrongly(study, finals, True) == []
    # Pruned trials stop early, not at the last step.
    lengths = [len(t.intermediate_values) for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert np.median(lengths) < EPOCHS / 2


def test_a_minimised_loss_with_steps_that_are_not_0_to_n():
    # A loss reported every 10 iterations, 10..300; the pruner's horizon is the last step.
    steps = list(range(10, 301, 10))

    def loss(a, tau, s):
        return (1.0 - a) + 2.0 * math.exp(-(s / 10) / tau)

    study, finals = curves_study("minimize", LearningCurvePruner(horizon=300), 30, loss, steps)
    pruned = states(study).count(optuna.trial.TrialState.PRUNED)
    assert pruned >= 8, pruned
    assert pruned_wrongly(study, finals, False) == []


def test_a_percentage_needs_its_range():
    steps = list(range(1, EPOCHS + 1))

    def percent(a, tau, s):
        return 100 * accuracy(a, tau, s)

    study, finals = curves_study(
        "maximize", LearningCurvePruner(horizon=EPOCHS, metric=(0, 100)), 25, percent, steps
    )
    assert states(study).count(optuna.trial.TrialState.PRUNED) >= 5
    assert pruned_wrongly(study, finals, True) == []
    # Declared as an accuracy, a percentage is refused with the reason.
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        curves_study("maximize", LearningCurvePruner(horizon=EPOCHS), 3, percent, steps)


def test_threaded_trials_share_one_pruner():
    steps = list(range(1, EPOCHS + 1))
    study, finals = curves_study(
        "maximize", LearningCurvePruner(horizon=EPOCHS), 24,
        accuracy, steps, n_jobs=2,
    )
    assert len(study.trials) == 24
    assert all(s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for s in states(study))
    assert states(study).count(optuna.trial.TrialState.PRUNED) >= 5
    assert pruned_wrongly(study, finals, True) == []


def test_guards_and_the_cache(monkeypatch):
    calls = []
    real = fo.predict

    def counting(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(fo, "predict", counting)
    pruner = LearningCurvePruner(horizon=EPOCHS, min_steps=6)
    study = optuna.create_study(direction="maximize", pruner=pruner)

    # No completed trial: nothing to beat, no forecast.
    t = study.ask()
    for e in range(1, 8):
        t.report(accuracy(0.5, 3.0, e), e)
        assert not t.should_prune()
    study.tell(t, accuracy(0.5, 3.0, EPOCHS))
    assert calls == []

    # A poor trial: no forecast before min_steps, then pruned.
    t = study.ask()
    for e in range(1, 6):
        t.report(accuracy(0.3, 3.0, e), e)
        assert not t.should_prune()
    assert calls == []
    t.report(accuracy(0.3, 3.0, 6), 6)
    assert t.should_prune()
    assert t.should_prune()  # asked again at the same step: from the cache
    assert len(calls) == 1
    study.tell(t, state=optuna.trial.TrialState.PRUNED)

    # Already better than the best at some step: never pruned, no forecast.
    t = study.ask()
    t.report(0.9, 1)
    for e in range(2, 9):
        t.report(0.1, e)
        assert not t.should_prune()
    assert len(calls) == 1
    study.tell(t, state=optuna.trial.TrialState.FAIL)

    # A diverged value prunes at once.
    t = study.ask()
    t.report(0.2, 1)
    t.report(float("nan"), 2)
    assert t.should_prune()
    study.tell(t, state=optuna.trial.TrialState.PRUNED)


def test_the_probability_it_acts_on():
    pruner = LearningCurvePruner(horizon=EPOCHS)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    t = study.ask()
    t.report(0.5, 1)
    assert pruner.probability(study, study.trials[-1]) is None  # no best yet
    study.tell(t, 0.8)
    poor, good = study.ask(), study.ask()
    for e in range(1, 9):
        poor.report(accuracy(0.5, 2.0, e), e)
        good.report(accuracy(0.95, 6.0, e), e)
    p_poor = pruner.probability(study, study.trials[poor.number])
    p_good = pruner.probability(study, study.trials[good.number])
    assert p_poor < 0.05 < p_good
    assert poor.should_prune() and not good.should_prune()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"horizon": 0}, "horizon must be a positive int"),
        ({"horizon": 10, "threshold": 1.5}, "threshold must lie in"),
        ({"horizon": 10, "min_steps": 0}, "min_steps"),
        ({"horizon": 10, "every": 0}, "every"),
        ({"horizon": 10, "metric": "acc"}, "metric must be None"),
        ({"horizon": 10, "metric": (0, float("inf"))}, "finite numbers"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LearningCurvePruner(**kwargs)


def _one_poor_trial(study):
    t = study.ask()
    for e in range(1, 6):
        t.report(0.1 * e, e)
    return t


@pytest.mark.parametrize(
    "direction, metric, message",
    [
        ("minimize", "accuracy", "metric='accuracy' is maximised but the study minimises"),
        ("maximize", "loss", "metric='loss' is minimised but the study maximises"),
        ("maximize", (0, None), "a maximised metric needs the best value it can reach"),
        ("minimize", (None, 5), "a minimised metric needs the best value it can reach"),
        ("maximize", (1, 0), "the range [1, 0] is empty"),
    ],
)
def test_a_metric_that_does_not_fit_the_study_is_explained(direction, metric, message):
    study = optuna.create_study(direction=direction, pruner=LearningCurvePruner(10, metric))
    study.add_trial(optuna.trial.create_trial(value=0.9 if direction == "maximize" else 0.01))
    t = _one_poor_trial(study)
    with pytest.raises(ValueError) as e:
        t.should_prune()
    assert message in str(e.value)


def test_a_step_beyond_the_horizon_is_explained():
    study = optuna.create_study(direction="maximize", pruner=LearningCurvePruner(3))
    study.add_trial(optuna.trial.create_trial(value=0.9))
    t = _one_poor_trial(study)
    with pytest.raises(ValueError, match="beyond the pruner's horizon 3"):
        t.should_prune()
