"""foresight.predict: agreement with the Rust predictor, NumPy in and out,
seeds, errors, and the GIL released while the MCMC runs."""
import doctest
import gzip
import json
import os
import subprocess
import threading

import numpy as np
import pytest

import foresight
from conftest import ROOT

CURVE = [0.42, 0.55, 0.61, 0.65, 0.67, 0.69, 0.70, 0.71]


def read_curves(path):
    with gzip.open(path, "rt") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def test_agrees_with_the_rust_command_line_on_the_same_input_and_seed():
    # Protocol P through the `foresight` binary: the same predictor, called
    # from Rust, on bundled curves (accuracy and loss), with seed 5.
    files = [os.path.join(ROOT, "curves", f) for f in ("lcbench-4.jsonl.gz", "taskset-imdb4.jsonl.gz")]
    cmd = ["cargo", "run", "--release", "-q", "-p", "foresight-cli", "--", "predict",
           "--per-task", "1", "--cutoffs", "0.3,0.6", "--seed", "5", "--json", "--rows"]
    for f in files:
        cmd += ["--curves", f]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    rows = json.loads(out)["rows"]
    curves = {(c["task"], c["config_id"]): c for f in files for c in read_curves(f)}
    assert len(rows) == 16
    metrics = set()
    for row in rows:
        curve = curves[(row["task"], row["config_id"])]
        metric = "accuracy" if curve["higher_is_better"] else "loss"
        metrics.add(metric)
        f = foresight.predict(curve["values"][: row["n"]], row["T"], metric, seed=5)
        q05, q95 = f.quantile([0.05, 0.95])
        for ours, theirs in [(f.mean(), row["mean"]), (f.std(), row["std"]), (q05, row["q05"]),
                             (q95, row["q95"]), (f.prob_better(row["y_best"]), row["p_better"])]:
            assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-15), row
        assert len(f.families) == row["families"]
    assert metrics == {"accuracy", "loss"}


def test_a_seed_fixes_the_forecast():
    a = foresight.predict(CURVE, 50, seed=3)
    b = foresight.predict(np.array(CURVE), 50, seed=3)
    c = foresight.predict(CURVE, 50, seed=4)
    assert a.mean() == b.mean() and a.std() == b.std()
    assert a.mean() != c.mean()
    assert np.array_equal(a.samples(100, seed=1), b.samples(100, seed=1))


def test_questions_at_any_epoch_in_metric_units():
    f = foresight.predict(CURVE, 50)
    assert f.horizon == 50 and f.observed == 8 and f.families and not f.is_fallback
    # The forecast rises with the lead and widens.
    assert f.mean(10) < f.mean(30) <= f.mean() + 1e-12
    assert f.std(10) < f.std()
    q = f.quantile(np.array([[0.05, 0.5], [0.9, 0.95]]))
    assert isinstance(q, np.ndarray) and q.shape == (2, 2)
    assert q[0, 0] < q[0, 1] < q[1, 0] < q[1, 1]
    assert isinstance(f.quantile(0.5), float)
    assert f.prob_better(q[0, 0]) == pytest.approx(0.95, abs=1e-6)
    s = f.samples(20000, seed=0)
    assert s.shape == (20000,) and s.dtype == np.float64
    assert np.mean(s > q[0, 1]) == pytest.approx(0.5, abs=0.02)
    assert np.mean(s) == pytest.approx(f.mean(), abs=3 * f.std() / np.sqrt(len(s)) + 1e-3)
    assert "Forecast(accuracy, epoch 8 -> 50" in repr(f)


def test_a_loss_is_forecast_downwards():
    loss = [2.0, 1.5, 1.2, 1.0, 0.9, 0.85, 0.8, 0.78]
    f = foresight.predict(loss, 40, metric="loss")
    lo, hi = f.quantile([0.05, 0.95])
    assert lo < f.mean() < hi < 0.9
    # Better means smaller for a loss.
    assert f.prob_better(hi) == pytest.approx(0.95, abs=1e-6)


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (([], 10), {}, "no observed epochs"),
        (([0.1, float("nan"), 0.3], 10), {}, "is NaN"),
        (([0.1, 0.2, 0.3], 2), {}, "shorter than the 3 observed epochs"),
        (([0.1, 0.2], 10), {"metric": "acc"}, "metric must be 'accuracy'"),
        (([10.0, 20.0, 30.0], 10), {}, "must lie in [0, 1]"),
        (([-1.0, 0.5], 10), {"metric": "loss"}, "a loss must be >= 0"),
        (([[0.1, 0.2]], 10), {}, "one-dimensional"),
        (([0.1, 0.2], 0), {}, "horizon must be >= 1"),
    ],
)
def test_bad_input_raises_a_clear_error(args, kwargs, message):
    with pytest.raises(ValueError) as e:
        foresight.predict(*args, **kwargs)
    assert message in str(e.value)


def test_bad_questions_raise():
    f = foresight.predict(CURVE, 20)
    with pytest.raises(ValueError, match="quantile level must lie in"):
        f.quantile(1.5)
    with pytest.raises(ValueError, match="epochs count from 1"):
        f.mean(epoch=0)
    with pytest.raises(TypeError):
        foresight.predict(CURVE, 20.5)


def test_the_mcmc_runs_without_the_gil():
    started, finished = threading.Event(), threading.Event()

    def work():
        started.set()
        for seed in range(3):
            foresight.predict(np.linspace(0.3, 0.8, 40) ** 0.5, 100, seed=seed, parallel=False)
        finished.set()

    t = threading.Thread(target=work)
    t.start()
    started.wait()
    count = 0
    while not finished.is_set():
        count += 1
    t.join()
    # With the GIL held for the whole MCMC this loop could not run meanwhile.
    assert count > 100


def test_docstring_examples_run():
    result = doctest.testmod(foresight)
    assert result.attempted > 0 and result.failed == 0
