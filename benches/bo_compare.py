#!/usr/bin/env python3
"""Protocol B side by side: foresight against scikit-optimize, Optuna and
random search on the same test functions, budgets and seeds.

    python3 benches/bo_compare.py [--seeds 10] [--skip-foresight] [--out FILE] [--timings-only]

Runs `cargo run --release --example bo_bench -- --json` for foresight and,
in a virtual environment of its own (target/py-bo: scikit-optimize, optuna,
torch), the Python tools:

  skopt-gp-hedge   gp_minimize(acq_func="gp_hedge", initial_point_generator="sobol", n_initial_points=10)
  optuna-gp        GPSampler(n_startup_trials=10, independent_sampler=QMCSampler(sobol, scrambled))
  optuna-tpe       TPESampler(n_startup_trials=10)
  optuna-random    RandomSampler

Every run has 60 evaluations of which 10 initial points; seeds 0..N-1. The
simple regret is best-found minus optimum; on hartmann6_noisy it is the
noise-free value of the recommended point: for the GPs of foresight and
scikit-optimize the evaluated point of lowest posterior mean, for Optuna
(whose GPSampler does not expose its model) and random search the best
observed. Suggestion times: Hartmann6, 50 and 200 random observations, then
ten consecutive suggestions over five seeds, median. Prints protocol B's JSON
(all methods) and a markdown table.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, "target", "py-bo")


def ensure_venv():
    py = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([py, "-m", "pip", "install", "-q", "scikit-optimize", "optuna", "torch", "greenlet"])
    os.execv(py, [py] + sys.argv)


def branin(x):
    b, c, r, s, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return (x[1] - b * x[0] ** 2 + c * x[0] - r) ** 2 + s * (1 - t) * math.cos(x[0]) + s


H_ALPHA = [1.0, 1.2, 3.0, 3.2]
H3_A = [[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]]
H3_P = [[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]]
H6_A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
H6_P = [
    [1312, 1696, 5569, 124, 8283, 5886],
    [2329, 4135, 8307, 3736, 1004, 9991],
    [2348, 1451, 3522, 2883, 3047, 6650],
    [4047, 8828, 8732, 5743, 1091, 381],
]


def hartmann(x, a, p):
    return -sum(
        H_ALPHA[i] * math.exp(-sum(a[i][j] * (x[j] - p[i][j] * 1e-4) ** 2 for j in range(len(x))))
        for i in range(4)
    )


def levy(x):
    w = [1 + (v - 1) / 4 for v in x]
    s = math.sin(math.pi * w[0]) ** 2
    for wi in w[:-1]:
        s += (wi - 1) ** 2 * (1 + 10 * math.sin(math.pi * wi + 1) ** 2)
    return s + (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)


def ackley(x):
    d = len(x)
    sq = sum(v * v for v in x) / d
    cs = sum(math.cos(2 * math.pi * v) for v in x) / d
    return -20 * math.exp(-0.2 * math.sqrt(sq)) - math.exp(cs) + 20 + math.e


PROBLEMS = [
    ("branin", [(-5.0, 10.0), (0.0, 15.0)], 0.397887, 0.0, branin),
    ("hartmann3", [(0.0, 1.0)] * 3, -3.86278, 0.0, lambda x: hartmann(x, H3_A, H3_P)),
    ("hartmann6", [(0.0, 1.0)] * 6, -3.32237, 0.0, lambda x: hartmann(x, H6_A, H6_P)),
    ("levy10", [(-10.0, 10.0)] * 10, 0.0, 0.0, levy),
    ("ackley5", [(-32.768, 32.768)] * 5, 0.0, 0.0, ackley),
    ("hartmann6_noisy", [(0.0, 1.0)] * 6, -3.32237, 0.1, lambda x: hartmann(x, H6_A, H6_P)),
]
CHECKPOINTS = [20, 40, 60]


def quantiles(v):
    import numpy as np

    return float(np.median(v)), float(np.quantile(v, 0.25)), float(np.quantile(v, 0.75))


def run_skopt(problem, seed):
    import numpy as np
    from skopt import Optimizer

    name, bounds, opt, noise, f = problem
    rng = np.random.RandomState(1000 + seed)
    o = Optimizer(bounds, base_estimator="GP", acq_func="gp_hedge", n_initial_points=10,
                  initial_point_generator="sobol", random_state=seed)
    xs, truths, regrets = [], [], []
    for k in range(1, 61):
        x = o.ask()
        t = f(x)
        y = t + noise * rng.randn()
        o.tell(x, y)
        xs.append(x)
        truths.append(t)
        if k in CHECKPOINTS:
            if noise > 0 and o.models:
                model = o.models[-1]
                mu = model.predict(o.space.transform(xs))
                regrets.append(truths[int(np.argmin(mu))] - opt)
            elif noise > 0:
                regrets.append(truths[int(np.argmin([t for t in truths]))] - opt)
            else:
                regrets.append(min(truths) - opt)
    return regrets


def run_optuna(problem, seed, method):
    import numpy as np
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name, bounds, opt, noise, f = problem
    if method == "optuna-gp":
        sampler = optuna.samplers.GPSampler(
            seed=seed, n_startup_trials=10,
            independent_sampler=optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed),
            deterministic_objective=noise == 0,
        )
    elif method == "optuna-tpe":
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=10)
    else:
        sampler = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(sampler=sampler, study_name=f"seed{seed}")
    rng = np.random.RandomState(1000 + seed)
    truths, observed, regrets = [], [], []
    for k in range(1, 61):
        trial = study.ask()
        x = [trial.suggest_float(f"x{i}", lo, hi) for i, (lo, hi) in enumerate(bounds)]
        t = f(x)
        y = t + noise * rng.randn()
        study.tell(trial, y)
        truths.append(t)
        observed.append(y)
        if k in CHECKPOINTS:
            regrets.append(truths[int(np.argmin(observed))] - opt)
    return regrets


def timings():
    import numpy as np
    import optuna
    from skopt import Optimizer

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    f = PROBLEMS[2][4]
    out = []
    for method in ["skopt-gp-hedge", "optuna-gp"]:
        for n in [50, 200]:
            secs = []
            for seed in range(5 if method == "optuna-gp" else 2):
                rng = np.random.RandomState(seed)
                pts = [list(rng.rand(6)) for _ in range(n)]
                if method == "skopt-gp-hedge":
                    # scikit-optimize fits its GP and optimises the
                    # acquisition inside `tell`, so a suggestion is the
                    # `tell` of the previous result plus the `ask`.
                    o = Optimizer([(0.0, 1.0)] * 6, base_estimator="GP", acq_func="gp_hedge",
                                  n_initial_points=10, random_state=seed)
                    o.tell(pts[:-1], [f(p) for p in pts[:-1]])
                    x = pts[-1]
                    for _ in range(10 if n == 50 else 3):
                        t0 = time.perf_counter()
                        o.tell(x, f(x))
                        x = o.ask()
                        secs.append(time.perf_counter() - t0)
                else:
                    sampler = optuna.samplers.GPSampler(seed=seed, n_startup_trials=10, deterministic_objective=True)
                    study = optuna.create_study(sampler=sampler)
                    dists = {f"x{i}": optuna.distributions.FloatDistribution(0.0, 1.0) for i in range(6)}
                    study.add_trials([
                        optuna.trial.create_trial(params={f"x{i}": p[i] for i in range(6)}, distributions=dists, value=f(p))
                        for p in pts
                    ])
                    for _ in range(10):
                        t0 = time.perf_counter()
                        trial = study.ask(dists)
                        secs.append(time.perf_counter() - t0)
                        study.tell(trial, f([trial.params[f"x{i}"] for i in range(6)]))
            out.append({"method": method, "dims": 6, "observations": n, "suggest_seconds": float(np.median(secs))})
            print(f"timing {method} {n}: {out[-1]['suggest_seconds']:.4f} s", file=sys.stderr, flush=True)
    return out


def main():
    ensure_venv()
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--skip-foresight", action="store_true")
    parser.add_argument("--out", default=None)
    parser.add_argument("--timings-only", action="store_true")
    args = parser.parse_args()
    if args.timings_only:
        # Both sides back to back, so that they see the same machine load.
        out = subprocess.run(
            ["cargo", "run", "--release", "--example", "bo_bench", "--", "--json", "--timings-only",
             "--methods", "gp-hedge,gp-ei"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout
        print(json.dumps({"timings": json.loads(out)["timings"] + timings()}))
        return
    rows, timing = [], []
    if not args.skip_foresight:
        out = subprocess.run(
            ["cargo", "run", "--release", "--example", "bo_bench", "--", "--json", "--seeds", str(args.seeds),
             "--methods", "gp-hedge,gp-ei,random"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout
        ours = json.loads(out)
        rows += ours["rows"]
        timing += ours["timings"]
    for problem in PROBLEMS:
        for method in ["skopt-gp-hedge", "optuna-gp", "optuna-tpe", "optuna-random"]:
            per_checkpoint = [[] for _ in CHECKPOINTS]
            for seed in range(args.seeds):
                r = run_skopt(problem, seed) if method == "skopt-gp-hedge" else run_optuna(problem, seed, method)
                for k, v in enumerate(r):
                    per_checkpoint[k].append(v)
            for k, evals in enumerate(CHECKPOINTS):
                med, q25, q75 = quantiles(per_checkpoint[k])
                rows.append({"function": problem[0], "method": method, "evals": evals, "median": med, "q25": q25, "q75": q75})
            print(f"{problem[0]} {method} done", file=sys.stderr, flush=True)
    timing += timings()
    result = {"rows": rows, "timings": timing}
    text = json.dumps(result)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)
    print(text)
    # Markdown: median regret at 60 evaluations (q25–q75).
    methods = []
    for r in rows:
        if r["method"] not in methods:
            methods.append(r["method"])
    print("\n| function | " + " | ".join(methods) + " |", file=sys.stderr)
    print("|---|" + "---|" * len(methods), file=sys.stderr)
    for name, *_ in PROBLEMS:
        cells = []
        for m in methods:
            r = next(r for r in rows if r["function"] == name and r["method"] == m and r["evals"] == 60)
            cells.append(f"{r['median']:.3g} ({r['q25']:.3g}–{r['q75']:.3g})")
        print(f"| {name} | " + " | ".join(cells) + " |", file=sys.stderr)


if __name__ == "__main__":
    main()
