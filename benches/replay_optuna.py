#!/usr/bin/env python3
"""Protocol R with Optuna: the same tasks, budgets and seeds as
`foresight replay`, so that the two can be compared side by side.

    python3 benches/replay_optuna.py --curves FILE [--curves FILE ...]
        [--tasks-per-source N] [--seeds 10] [--samplers random,tpe]
        [--pruners nop,median,sha,hyperband,lc] [--out FILE [--resume]]

With --out, the file is rewritten after each task (runs so far and their
summary), so a long benchmark loses at most one task when interrupted;
--resume keeps the runs already in it and runs only the missing ones; what
is printed (runs and summary) covers only the runs this invocation asks for.

Creates its own virtual environment (target/py-replay) with Optuna, and
installs foresight's Python package (python/, built from this checkout)
into it for the `lc` pruner, foresight.optuna.LearningCurvePruner.

How protocol R maps onto Optuna (docs/benchmarks.md says the same):
* The pool's configurations are encoded as foresight encodes them: each
  numeric hyperparameter by its rank in the pool (ties averaged, scaled to
  [0, 1]), each categorical one one-hot. Optuna samples FloatDistribution(0, 1)
  per numeric hyperparameter and CategoricalDistribution per categorical one;
  the proposal is mapped to the nearest unused pool configuration (Euclidean,
  a categorical mismatch adds 1 to the squared distance).
* The trial Optuna proposed reports the logged values of the configuration
  actually run, one per epoch (step = epoch, 1..T), and asks its pruner after
  epochs 1..T-1. It is then closed as FAIL (Optuna's samplers ignore failed
  trials) and the configuration actually run is added to the study
  (`create_trial` + `add_trial`) with its intermediate values and its state:
  COMPLETE with the final value, or PRUNED. So samplers learn what was run,
  and pruners compare what was observed (SuccessiveHalving and Hyperband keep
  their rung values on the proposing trial; the median pruner reads the
  completed ones).
* A curve with a null at epoch e diverges there: it costs e+1 epochs and is
  added as FAIL. Budget: 50*T epochs; the trial running when it is spent is
  cut off (added as FAIL). An exhausted pool ends the run.
* Study name = "seed-<seed>" (HyperbandPruner assigns brackets from a hash of
  the study name); samplers are seeded with the seed.
* Pruners: MedianPruner(n_startup_trials=5, n_warmup_steps=5),
  SuccessiveHalvingPruner() (defaults), HyperbandPruner(min_resource=1,
  max_resource=T), NopPruner(), and foresight's
  LearningCurvePruner(horizon=T, seed=seed) with its defaults (threshold
  0.05, min_steps 3, the metric from the study's direction: an accuracy in
  [0, 1] or a loss >= 0).
* The cost of pruning: the wall time of every `trial.should_prune()` call is
  summed per run (`should_prune_calls`, `should_prune_seconds`); the summary
  gives the mean per call (`ms_per_should_prune`).
"""
import argparse
import gzip
import json
import math
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, "target", "py-replay")


def ensure_venv():
    py = os.path.join(VENV, "bin", "python")
    if sys.executable != py:
        if not os.path.exists(py):
            subprocess.check_call([sys.executable, "-m", "venv", VENV])
            subprocess.check_call([py, "-m", "pip", "install", "-q", "optuna>=5,<6", "numpy"])
        pruners = next((sys.argv[i + 1] for i, a in enumerate(sys.argv[:-1]) if a == "--pruners"), "")
        if "lc" in pruners.split(","):
            # The package as this checkout has it (cargo rebuilds what changed).
            subprocess.check_call([py, "-m", "pip", "install", "-q", os.path.join(ROOT, "python")])
        os.execv(py, [py] + sys.argv)


def read_curves(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def ranks(xs):
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    n = len(xs)
    while i < n:
        j = i
        while j + 1 < n and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        avg = 0.5 * (i + j) / (n - 1) if n > 1 else 0.5
        for k in order[i:j + 1]:
            r[k] = avg
        i = j + 1
    return r


class Pool:
    def __init__(self, rows):
        self.source, self.task = rows[0]["source"], rows[0]["task"]
        self.higher = rows[0]["higher_is_better"]
        self.T = len(rows[0]["values"])
        self.curves = [[float("nan") if v is None else v for v in r["values"]] for r in rows]
        names = sorted(rows[0]["config"].keys())
        self.numeric, self.categorical = [], []
        cols = {}
        for name in names:
            vals = [r["config"][name] for r in rows]
            if all(isinstance(v, (int, float)) for v in vals):
                self.numeric.append(name)
                cols[name] = ranks([float(v) for v in vals])
            else:
                self.categorical.append(name)
                cols[name] = [str(v) for v in vals]
        self.encoded = [{n: cols[n][i] for n in names} for i in range(len(rows))]
        import numpy as np
        self.num = np.array([[cols[n][i] for n in self.numeric] for i in range(len(rows))]).reshape(len(rows), -1)
        self.cat = {n: np.array(cols[n], dtype=object) for n in self.categorical}
        worst = -math.inf if self.higher else math.inf
        self.finals = [c[-1] if all(math.isfinite(v) for v in c) else worst for c in self.curves]
        best_first = sorted(self.finals, reverse=self.higher)
        self.y_star = best_first[0]
        n = len(best_first)
        self.y_med = best_first[n // 2] if n % 2 else 0.5 * (best_first[n // 2 - 1] + best_first[n // 2])

    def regret(self, inc):
        if inc is None:
            return math.inf
        scale = abs(self.y_star - self.y_med)
        return abs(self.y_star - inc) / scale if scale > 0 and math.isfinite(scale) else abs(self.y_star - inc)

    def better(self, a, b):
        return a > b if self.higher else a < b

    def nearest(self, params, unused):
        """Index of the nearest configuration among those `unused` (a
        boolean mask); ties go to the lowest index."""
        import numpy as np
        p = np.array([params[n] for n in self.numeric])
        d = ((self.num - p) ** 2).sum(axis=1)
        for n in self.categorical:
            d = d + (self.cat[n] != params[n])
        d = np.where(unused, d, np.inf)
        return int(np.argmin(d))


def lc_pruner(T, seed):
    from foresight.optuna import LearningCurvePruner
    return LearningCurvePruner(horizon=T, seed=seed)


def run_one(optuna, pool, sampler_name, pruner_name, seed):
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    T, budget = pool.T, 50 * pool.T
    dists = {n: FloatDistribution(0.0, 1.0) for n in pool.numeric}
    for n in pool.categorical:
        dists[n] = CategoricalDistribution(sorted({c[n] for c in pool.encoded}))
    sampler = optuna.samplers.RandomSampler(seed=seed) if sampler_name == "random" else optuna.samplers.TPESampler(seed=seed)
    pruner = {
        "nop": lambda: optuna.pruners.NopPruner(),
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=5),
        "sha": lambda: optuna.pruners.SuccessiveHalvingPruner(),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=T),
        "lc": lambda: lc_pruner(T, seed),
    }[pruner_name]()
    direction = "maximize" if pool.higher else "minimize"
    study = optuna.create_study(study_name=f"seed-{seed}", sampler=sampler, pruner=pruner, direction=direction)
    import numpy as np
    unused = np.ones(len(pool.curves), dtype=bool)
    used, inc, traj = 0, None, []
    started = stopped = false_stops = prune_calls = 0
    prune_seconds = 0.0
    from optuna.trial import TrialState, create_trial
    while used < budget and unused.any():
        trial = study.ask(dists)
        i = pool.nearest(trial.params, unused)
        unused[i] = False
        started += 1
        curve = pool.curves[i]
        values, state, cut = {}, None, False
        for e in range(1, T + 1):
            if used >= budget:
                cut = True
                break
            used += 1
            v = curve[e - 1]
            if not math.isfinite(v):
                state = TrialState.FAIL
                break
            values[e] = v
            trial.report(v, e)
            if e < T:
                t_prune = time.perf_counter()
                prune = trial.should_prune()
                prune_seconds += time.perf_counter() - t_prune
                prune_calls += 1
                if prune:
                    state = TrialState.PRUNED
                    break
        else:
            state = TrialState.COMPLETE
        study.tell(trial, state=TrialState.FAIL)
        params = {n: pool.encoded[i][n] for n in dists}
        if cut:
            break
        if state == TrialState.COMPLETE:
            study.add_trial(create_trial(params=params, distributions=dists, value=curve[-1],
                                         intermediate_values=values, state=state))
            if inc is None or pool.better(curve[-1], inc):
                inc = curve[-1]
                r = pool.regret(inc)
                if not traj or traj[-1][1] != r:
                    traj.append((used, r))
        elif state == TrialState.PRUNED:
            stopped += 1
            if inc is not None and pool.better(pool.finals[i], inc):
                false_stops += 1
            study.add_trial(create_trial(params=params, distributions=dists, intermediate_values=values, state=state))
    def at(epochs):
        r = math.inf
        for e, v in traj:
            if e <= epochs:
                r = v
        return r

    def to(target):
        return next((e for e, v in traj if v <= target), math.inf)

    return {
        "source": pool.source, "task": pool.task, "sampler": f"optuna-{sampler_name}", "policy": pruner_name,
        "seed": seed, "T": T, "budget": budget,
        "r_5T": at(5 * T), "r_10T": at(10 * T), "r_20T": at(20 * T), "r_50T": at(50 * T),
        "epochs_to_r0.1": to(0.1), "epochs_to_r0.01": to(0.01),
        "trials_started": started, "trials_stopped": stopped, "false_stops": false_stops,
        "should_prune_calls": prune_calls, "should_prune_seconds": prune_seconds,
        "traj": traj,
    }


def median(xs):
    xs = [x for x in xs if not (isinstance(x, float) and math.isnan(x))]
    return statistics.median(xs) if xs else float("nan")


def summarise(runs):
    out = []
    keys = []
    for r in runs:
        k = (r["sampler"], r["policy"])
        if k not in keys:
            keys.append(k)
    for s, p in keys:
        mine = [r for r in runs if r["sampler"] == s and r["policy"] == p]
        tasks = sorted({(r["source"], r["task"]) for r in mine})

        def per_task(f):
            return median([median([f(r) for r in mine if (r["source"], r["task"]) == t]) for t in tasks])

        def speedup(r):
            none = next((n for n in runs if n["sampler"] == s and n["policy"] == "nop" and n["task"] == r["task"]
                         and n["source"] == r["source"] and n["seed"] == r["seed"]), None)
            if none is None or not math.isfinite(none["r_50T"]):
                return float("nan")
            target = none["r_50T"]
            e_none = next(e for e, v in none["traj"] if v <= target)
            e_pol = min(next((e for e, v in r["traj"] if v <= target), r["budget"]), r["budget"])
            return e_none / e_pol

        stopped = sum(r["trials_stopped"] for r in mine)
        calls = sum(r.get("should_prune_calls", 0) for r in mine)
        seconds = sum(r.get("should_prune_seconds", 0.0) for r in mine)
        out.append({
            "sampler": s, "policy": p,
            "r_10T": per_task(lambda r: r["r_10T"]), "r_20T": per_task(lambda r: r["r_20T"]),
            "r_50T": per_task(lambda r: r["r_50T"]), "epochs_to_r0.1": per_task(lambda r: r["epochs_to_r0.1"]),
            "speedup": per_task(speedup), "trials_started": per_task(lambda r: r["trials_started"]),
            "false_stop_rate": sum(r["false_stops"] for r in mine) / stopped if stopped else 0.0,
            "ms_per_should_prune": 1000 * seconds / calls if calls else float("nan"),
        })
    return out


def jsonable(x):
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    return x


def unjsonable(x):
    """Inverse of `jsonable`: the string "inf" back to infinity."""
    if x == "inf":
        return math.inf
    if isinstance(x, dict):
        return {k: unjsonable(v) for k, v in x.items()}
    if isinstance(x, list):
        return [unjsonable(v) for v in x]
    return x


def main():
    ensure_venv()
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ap = argparse.ArgumentParser()
    ap.add_argument("--curves", action="append", required=True)
    ap.add_argument("--task", action="append", default=None, help="only these tasks (repeat)")
    ap.add_argument("--tasks-per-source", type=int, default=None)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--samplers", default="random,tpe")
    ap.add_argument("--pruners", default="nop,median,sha,hyperband")
    ap.add_argument("--out", default=None)
    ap.add_argument("--resume", action="store_true", help="keep the runs already in --out")
    args = ap.parse_args()
    if args.resume and not args.out:
        ap.error("--resume needs --out")
    groups = {}
    for path in args.curves:
        for row in read_curves(path):
            groups.setdefault((row["source"], row["task"]), []).append(row)
    pools, per_source = [], {}
    for (src, task), rows in groups.items():
        if args.task is not None and task not in args.task:
            continue
        if args.tasks_per_source is not None and per_source.get(src, 0) >= args.tasks_per_source:
            continue
        per_source[src] = per_source.get(src, 0) + 1
        pools.append(Pool(rows))
    runs = []
    if args.resume and os.path.exists(args.out):
        with open(args.out) as fh:
            runs = [unjsonable(r) for r in json.load(fh)["runs"]]
    done = {(r["task"], r["sampler"], r["policy"], r["seed"]) for r in runs}

    # The summary (and the printed runs) cover what this invocation asks
    # for; the file keeps every run it holds.
    wanted = {(pool.task, f"optuna-{s}", p, seed) for pool in pools for s in args.samplers.split(",")
              for p in args.pruners.split(",") for seed in range(args.seeds)}

    def write():
        if args.out:
            with open(args.out + ".tmp", "w") as fh:
                fh.write(json.dumps(jsonable({"runs": runs, "summary": summarise(runs)})))
            os.replace(args.out + ".tmp", args.out)
        mine = [r for r in runs if (r["task"], r["sampler"], r["policy"], r["seed"]) in wanted]
        return json.dumps(jsonable({"runs": mine, "summary": summarise(mine)}))

    t0 = time.time()
    for pool in pools:
        for s in args.samplers.split(","):
            for p in args.pruners.split(","):
                for seed in range(args.seeds):
                    if (pool.task, f"optuna-{s}", p, seed) not in done:
                        runs.append(run_one(optuna, pool, s, p, seed))
            print(f"{pool.task} {s} done ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
        write()
    print(write())


if __name__ == "__main__":
    main()
