#!/usr/bin/env python3
"""Optuna 5's PostgreSQL storage (RDBStorage) under protocol S of
BENCHMARKS.md, one measurement per run, so that benches/storage.rs can set it
side by side with foresight's storages (it runs this script as a subprocess).

    python3 benches/optuna_storage.py roundtrip --trials N [--round-trips 200]
        [--api-fill 1000] [--pg-url URL]
    python3 benches/optuna_storage.py throughput --workers K [--trials 400]
        [--epochs 20] [--pg-url URL]

Prints exactly one JSON object on stdout; progress and errors go to stderr, and
any failure (a worker's included) exits non-zero. Creates its own virtual
environment (target/py-storage) with the newest optuna and psycopg2-binary,
and re-runs itself inside it.

Each run gets a fresh database, optuna_bench_<pid>_<n>, made with `createdb` on
the server of --pg-url (default postgresql+psycopg2://postgres@127.0.0.1:5432,
a SQLAlchemy URL without the database) and dropped with `dropdb --force` when
the run ends, on failure and SIGTERM too (the workers get SIGTERM when the
parent dies). Optuna wraps its RDBStorage in its usual in-process cache
(_CachedStorage), as `create_study(storage=...)` does. All times are
wall-clock.

roundtrip
  A study (direction maximize) is filled with N COMPLETE trials, each with
  x ~ U[0, 1] (FloatDistribution(0, 1), random.Random(N)), intermediate
  values v_s = x * (1 - exp(-(s+1)/3)) at steps s = 0..19, and value v_19 =
  x * (1 - exp(-20/3)). The first min(N, --api-fill) are added by
  `study.add_trials` of `optuna.trial.create_trial(...)` in chunks of 500
  (Optuna writes one trial per transaction, some 40-90 ms a trial here); the
  rest in one SQL transaction that copies the last add_trial'ed trial's rows
  (state, dates, distribution JSON, value types) with each trial's own x,
  value and intermediate values (computed in Python, exact), then ANALYZE.
  fill_seconds covers both parts (not create_study); fill_add_trials and
  fill_add_trials_ms_per_trial are the Optuna part alone. The study is then
  loaded afresh and checked (N trials numbered 0..N-1, all COMPLETE, values
  and intermediate values exact); that is not timed.
  join_seconds: a new RDBStorage on the database, `optuna.load_study` with
  RandomSampler(seed=0), and the first `study.get_trials(deepcopy=False)`,
  which loads all N trials into Optuna's cache.
  Then --round-trips (200) round trips on that study, each timed alone:
      t = study.ask({"x": FloatDistribution(0, 1)}); study.tell(t, 0.5)
  (the study grows by one trial per round trip). median_ms, p95_ms (linear
  interpolation between order statistics at rank (n-1)*0.95, as numpy's
  default), min_ms and max_ms over them.
  {"store","optuna","trials","round_trips","fill_seconds","fill_add_trials",
   "fill_add_trials_ms_per_trial","join_seconds","median_ms","p95_ms",
   "min_ms","max_ms"}

throughput
  One study (direction maximize) in one fresh database, created by the parent.
  Then K worker processes (this script, hidden `_worker` mode, started with
  subprocess), each: import Optuna, `load_study` on its own RDBStorage with
  RandomSampler(seed=worker index) and MedianPruner(n_startup_trials=5,
  n_warmup_steps=4) (step s is epoch s+1, so nothing stops before epoch 5),
  then `study.optimize(objective, callbacks=[MaxTrialsCallback(--trials,
  states=None)])`, so that the whole study stops at about --trials (400)
  trials (a worker stops after a trial when the study holds >= --trials
  trials in any state, running ones included). The objective:
      x = trial.suggest_float("x", 0, 1)
      for s in range(epochs): v = x * (1 - exp(-(s+1)/3)); trial.report(v, s)
          if trial.should_prune(): raise optuna.TrialPruned()
      return v
  seconds: from launching the first worker process to the last one's exit
  (process start-up, imports and load_study included).
  seconds_after_start: from the first worker's entering study.optimize to the
  last one's exit.
  Read back from the database afterwards, in SQL: trials (rows created),
  completed, pruned, other (every other state), epochs (intermediate values
  stored), started_twice (trials carrying Optuna's retry attribute, system
  attr "failed_trial" set by RetryFailedTrialCallback, plus the extra rows of
  any trial number stored more than once; must be 0), never_ended (trials
  still RUNNING or WAITING; must be 0). epochs_per_second = epochs / seconds.
  {"store","optuna","workers","trials","completed","pruned","other",
   "epochs","seconds","seconds_after_start","epochs_per_second",
   "started_twice","never_ended"}
"""

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from contextlib import contextmanager

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, "target", "py-storage")
PG_BASE = "postgresql+psycopg2://postgres@127.0.0.1:5432"
STEPS = 20  # intermediate values per trial in the roundtrip fill


def ensure_venv():
    py = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", VENV], stdout=sys.stderr)
        subprocess.check_call([py, "-m", "pip", "install", "-q", "--upgrade", "optuna", "psycopg2-binary"],
                              stdout=sys.stderr)
    os.execv(py, [py] + sys.argv)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def pg_args(base):
    """createdb/dropdb connection arguments from a SQLAlchemy base URL."""
    from sqlalchemy.engine import make_url

    u = make_url(base + "/postgres")
    return ["-h", u.host or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or "postgres"]


_DB_COUNTER = [0]


@contextmanager
def fresh_database(base):
    """A new empty database, dropped on exit (also on failure or SIGTERM)."""
    _DB_COUNTER[0] += 1
    name = f"optuna_bench_{os.getpid()}_{_DB_COUNTER[0]}"
    args = pg_args(base)
    try:
        subprocess.check_call(["createdb"] + args + [name])
        yield f"{base}/{name}"
    finally:
        # A second SIGTERM must not stop the drop.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        r = subprocess.run(["dropdb", "--if-exists", "--force"] + args + [name],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            log(f"warning: dropdb {name} failed: {r.stderr.strip()}")


def new_storage(url):
    import optuna

    return optuna.storages.RDBStorage(url)


def close_storage(storage):
    try:
        storage.engine.dispose()
    except Exception:
        pass


def curve(x, steps=STEPS):
    """The intermediate values at steps 0..steps-1; the value is the last."""
    return [x * (1 - math.exp(-(s + 1) / 3)) for s in range(steps)]


def pg_array(values):
    """A PostgreSQL array literal; repr keeps every float exact."""
    return "{" + ",".join(repr(v) for v in values) + "}"


# ---------------------------------------------------------------- roundtrip

def fill(study, storage, n, api_limit, chunk=500):
    """N COMPLETE trials: the first min(n, api_limit) (at least 1) by
    study.add_trials in chunks, the rest by copying the last of them in SQL."""
    import optuna
    from optuna.distributions import FloatDistribution

    rng = random.Random(n)
    xs = [rng.random() for _ in range(n)]
    dist = {"x": FloatDistribution(0.0, 1.0)}
    n_api = max(1, min(n, api_limit))
    t0 = time.perf_counter()
    done = 0
    while done < n_api:
        k = min(chunk, n_api - done)
        trials = []
        for x in xs[done:done + k]:
            c = curve(x)
            trials.append(optuna.trial.create_trial(
                params={"x": x}, distributions=dist, value=c[-1],
                intermediate_values=dict(enumerate(c)), state=optuna.trial.TrialState.COMPLETE))
        study.add_trials(trials)
        done += k
        el = time.perf_counter() - t0
        log(f"  add_trials: {done}/{n_api} trials ({el:.1f} s, {1000 * el / done:.2f} ms/trial)")
    api_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    if n > n_api:
        sql_fill(storage, study._study_id, n_api, xs[n_api:])
        log(f"  SQL copy: {n - n_api} trials in {time.perf_counter() - t1:.2f} s")
    total = time.perf_counter() - t0
    return xs, {"fill_seconds": total, "fill_add_trials": n_api,
                "fill_add_trials_ms_per_trial": 1000 * api_s / n_api}


def sql_fill(storage, study_id, first_number, xs):
    """Adds len(xs) COMPLETE trials numbered first_number.. to the study in
    one transaction, as Optuna's add_trial writes them: the rows (state, dates,
    distribution JSON, value types) are copied from the study's trial
    first_number - 1 (made by add_trial); x, the value and the intermediate
    values are each trial's own, computed in Python."""
    numbers = list(range(first_number, first_number + len(xs)))
    curves = [curve(x) for x in xs]
    p = {"sid": study_id, "tnum": first_number - 1,
         "numbers": pg_array(numbers), "xs": pg_array(xs), "vals": pg_array([c[-1] for c in curves]),
         "iv_numbers": pg_array([n for n in numbers for _ in range(STEPS)]),
         "iv_steps": pg_array([s for _ in numbers for s in range(STEPS)]),
         "ivs": pg_array([v for c in curves for v in c])}
    tmpl = "(SELECT trial_id FROM trials WHERE study_id = %(sid)s AND number = %(tnum)s)"
    new = "JOIN trials t ON t.study_id = %(sid)s AND t.number = u.number"
    with storage.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO trials (number, study_id, state, datetime_start, datetime_complete) "
            "SELECT u.number, %(sid)s, t.state, t.datetime_start, t.datetime_complete "
            "FROM unnest(%(numbers)s::int[]) AS u(number), trials t "
            f"WHERE t.trial_id = {tmpl} ORDER BY u.number", p)
        conn.exec_driver_sql(
            "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) "
            "SELECT t.trial_id, tp.param_name, u.x, tp.distribution_json "
            f"FROM unnest(%(numbers)s::int[], %(xs)s::float8[]) AS u(number, x) {new} "
            f"CROSS JOIN (SELECT param_name, distribution_json FROM trial_params WHERE trial_id = {tmpl}) tp", p)
        conn.exec_driver_sql(
            "INSERT INTO trial_values (trial_id, objective, value, value_type) "
            "SELECT t.trial_id, tv.objective, u.v, tv.value_type "
            f"FROM unnest(%(numbers)s::int[], %(vals)s::float8[]) AS u(number, v) {new} "
            f"CROSS JOIN (SELECT objective, value_type FROM trial_values WHERE trial_id = {tmpl}) tv", p)
        conn.exec_driver_sql(
            "INSERT INTO trial_intermediate_values (trial_id, step, intermediate_value, intermediate_value_type) "
            "SELECT t.trial_id, u.step, u.v, iv.intermediate_value_type "
            "FROM unnest(%(iv_numbers)s::int[], %(iv_steps)s::int[], %(ivs)s::float8[]) AS u(number, step, v) "
            f"{new} CROSS JOIN (SELECT intermediate_value_type FROM trial_intermediate_values "
            f"WHERE trial_id = {tmpl} LIMIT 1) iv", p)
        conn.exec_driver_sql("ANALYZE")


def check_filled(url, study_name, xs):
    """Loads the study afresh and checks what Optuna sees."""
    import optuna
    from optuna.trial import TrialState

    storage = new_storage(url)
    try:
        trials = optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False)
    finally:
        close_storage(storage)
    n = len(xs)
    bad = []
    for t in trials:
        c = curve(xs[t.number]) if 0 <= t.number < n else None
        if (c is None or t.state != TrialState.COMPLETE or t.params.get("x") != xs[t.number]
                or t.value != c[-1] or t.intermediate_values != dict(enumerate(c))):
            bad.append(t.number)
    if len(trials) != n or bad or sorted(t.number for t in trials) != list(range(n)):
        raise RuntimeError(f"filled study is wrong: {len(trials)} trials of {n}, bad: {bad[:10]}")


def percentile(values, q):
    """numpy's default ("linear"): rank (n-1)*q, interpolated."""
    a = sorted(values)
    rank = (len(a) - 1) * q
    lo = math.floor(rank)
    hi = min(lo + 1, len(a) - 1)
    return a[lo] + (a[hi] - a[lo]) * (rank - lo)


def run_roundtrip(args):
    import optuna
    from optuna.distributions import FloatDistribution

    n = args.trials
    with fresh_database(args.pg_url) as url:
        log(f"roundtrip N={n}: {url.rsplit('/', 1)[1]}")
        storage = new_storage(url)
        study = optuna.create_study(storage=storage, study_name="roundtrip", direction="maximize")
        xs, filled = fill(study, storage, n, args.api_fill)
        close_storage(storage)
        check_filled(url, "roundtrip", xs)
        log(f"  filled and checked: {n} trials in {filled['fill_seconds']:.2f} s")

        t0 = time.perf_counter()
        storage = new_storage(url)
        study = optuna.load_study(study_name="roundtrip", storage=storage,
                                  sampler=optuna.samplers.RandomSampler(seed=0))
        study.get_trials(deepcopy=False)
        join_s = time.perf_counter() - t0
        log(f"  join (load_study + first get_trials): {join_s:.3f} s")

        dist = {"x": FloatDistribution(0.0, 1.0)}
        times = []
        for _ in range(args.round_trips):
            t0 = time.perf_counter()
            t = study.ask(dist)
            study.tell(t, 0.5)
            times.append(1000 * (time.perf_counter() - t0))
        close_storage(storage)
    times_sorted = sorted(times)
    res = {
        "store": "optuna-rdb", "optuna": optuna.__version__, "trials": n, "round_trips": len(times),
        "fill_seconds": round(filled["fill_seconds"], 3),
        "fill_add_trials": filled["fill_add_trials"],
        "fill_add_trials_ms_per_trial": round(filled["fill_add_trials_ms_per_trial"], 3),
        "join_seconds": round(join_s, 4),
        "median_ms": round(percentile(times_sorted, 0.5), 4),
        "p95_ms": round(percentile(times_sorted, 0.95), 4),
        "min_ms": round(times_sorted[0], 4),
        "max_ms": round(times_sorted[-1], 4),
    }
    log(f"  {len(times)} round trips: median {res['median_ms']:.2f} ms, p95 {res['p95_ms']:.2f} ms, "
        f"min {res['min_ms']:.2f} ms, max {res['max_ms']:.2f} ms")
    return res


# --------------------------------------------------------------- throughput

def run_worker(args):
    """One throughput worker (hidden `_worker` mode). Prints one JSON line
    on stdout: when it entered study.optimize (time.monotonic, which is
    system-wide on Linux) and how many trials it ran."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    epochs = args.epochs
    storage = new_storage(args.url)
    study = optuna.load_study(
        study_name="throughput", storage=storage,
        sampler=optuna.samplers.RandomSampler(seed=args.index),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=4))
    ran = [0]

    def objective(trial):
        ran[0] += 1
        x = trial.suggest_float("x", 0.0, 1.0)
        v = 0.0
        for s in range(epochs):
            v = x * (1 - math.exp(-(s + 1) / 3))
            trial.report(v, s)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return v

    ready = time.monotonic()
    study.optimize(objective, callbacks=[optuna.study.MaxTrialsCallback(args.trials, states=None)])
    close_storage(storage)
    print(json.dumps({"worker": args.index, "ready": ready, "trials_run": ran[0]}), flush=True)


def _die_with_parent():
    """preexec_fn: SIGTERM this worker when the parent dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def run_workers(args, url):
    """Starts the workers, waits for all, and returns (seconds,
    seconds_after_start). Raises if any worker fails (the others are then
    terminated)."""
    cmd = [sys.executable, os.path.abspath(__file__), "_worker", "--url", url,
           "--trials", str(args.trials), "--epochs", str(args.epochs)]
    procs = {}
    ok = False
    launch = time.monotonic()
    try:
        for w in range(args.workers):
            p = subprocess.Popen(cmd + ["--index", str(w)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                 preexec_fn=_die_with_parent)
            procs[p.pid] = (w, p)
        alive = set(procs)
        while alive:
            pid, status = os.waitpid(-1, 0)
            if pid not in procs:
                continue
            w, p = procs[pid]
            p.returncode = os.waitstatus_to_exitcode(status)
            alive.discard(pid)
            if p.returncode != 0:
                raise RuntimeError(f"throughput worker {w} failed (exit code {p.returncode}); "
                                   "its error is above on stderr")
        end = time.monotonic()
        ok = True
    finally:
        if not ok:
            for w, p in procs.values():
                if p.returncode is None:
                    p.terminate()
            for w, p in procs.values():
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
    reports = []
    for w, p in procs.values():
        out = p.stdout.read().decode()
        p.stdout.close()
        lines = [ln for ln in out.splitlines() if ln.strip()]
        if not lines:
            raise RuntimeError(f"throughput worker {w} printed no report")
        reports.append(json.loads(lines[-1]))
    first_ready = min(r["ready"] for r in reports)
    log("  trials run per worker: " + ", ".join(str(r["trials_run"]) for r in sorted(reports, key=lambda r: r["worker"])))
    return end - launch, end - first_ready


def read_back(url, study_name):
    """Counts from the database itself (Optuna's cache keys trials by number,
    so it would hide a duplicated number)."""
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            def one(sql, **p):
                return int(conn.exec_driver_sql(sql, p).scalar())

            sid = one("SELECT study_id FROM studies WHERE study_name = %(n)s", n=study_name)
            states = {st: int(c) for st, c in conn.exec_driver_sql(
                "SELECT state::text, count(*) FROM trials WHERE study_id = %(s)s GROUP BY state", {"s": sid})}
            epochs = one("SELECT count(*) FROM trial_intermediate_values v JOIN trials t USING (trial_id) "
                         "WHERE t.study_id = %(s)s", s=sid)
            retried = one("SELECT count(DISTINCT a.trial_id) FROM trial_system_attributes a "
                          "JOIN trials t USING (trial_id) WHERE t.study_id = %(s)s AND a.key = 'failed_trial'", s=sid)
            duplicated = one("SELECT coalesce(sum(c - 1), 0) FROM (SELECT count(*) AS c FROM trials "
                             "WHERE study_id = %(s)s GROUP BY number HAVING count(*) > 1) d", s=sid)
    finally:
        engine.dispose()
    total = sum(states.values())
    return {"trials": total, "completed": states.get("COMPLETE", 0), "pruned": states.get("PRUNED", 0),
            "other": total - states.get("COMPLETE", 0) - states.get("PRUNED", 0), "epochs": epochs,
            "started_twice": retried + duplicated,
            "never_ended": states.get("RUNNING", 0) + states.get("WAITING", 0)}


def run_throughput(args):
    import optuna

    with fresh_database(args.pg_url) as url:
        log(f"throughput: {args.workers} workers, {args.trials} trials of up to {args.epochs} epochs: "
            f"{url.rsplit('/', 1)[1]}")
        storage = new_storage(url)
        optuna.create_study(storage=storage, study_name="throughput", direction="maximize")
        close_storage(storage)
        seconds, after_start = run_workers(args, url)
        counts = read_back(url, "throughput")
    res = {"store": "optuna-rdb", "optuna": optuna.__version__, "workers": args.workers,
           "trials": counts["trials"], "completed": counts["completed"], "pruned": counts["pruned"],
           "other": counts["other"], "epochs": counts["epochs"],
           "seconds": round(seconds, 4), "seconds_after_start": round(after_start, 4),
           "epochs_per_second": round(counts["epochs"] / seconds, 3),
           "started_twice": counts["started_twice"], "never_ended": counts["never_ended"]}
    log(f"  {res['trials']} trials ({res['completed']} complete, {res['pruned']} pruned, {res['other']} other), "
        f"{res['epochs']} epochs in {seconds:.2f} s ({after_start:.2f} s after the first start): "
        f"{res['epochs_per_second']:.1f} epochs/s")
    return res


# --------------------------------------------------------------------- main

def positive(s):
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def main():
    ap = argparse.ArgumentParser(description="Optuna 5's PostgreSQL storage under protocol S (see the module docstring).")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="{roundtrip,throughput}")
    pg = argparse.ArgumentParser(add_help=False)
    pg.add_argument("--pg-url", default=PG_BASE, help=f"SQLAlchemy URL without the database (default {PG_BASE})")

    rt = sub.add_parser("roundtrip", parents=[pg], help="fill N trials, then time join and ask+tell round trips")
    rt.add_argument("--trials", type=positive, required=True, help="finished trials in the study beforehand (N)")
    rt.add_argument("--round-trips", type=positive, default=200)
    rt.add_argument("--api-fill", type=int, default=1000,
                    help="at most this many (at least 1) trials filled by study.add_trials, the rest by SQL copy")

    tp = sub.add_parser("throughput", parents=[pg], help="K worker processes on one study")
    tp.add_argument("--workers", type=positive, required=True)
    tp.add_argument("--trials", type=positive, default=400, help="trials in the study (MaxTrialsCallback)")
    tp.add_argument("--epochs", type=positive, default=20)

    wk = sub.add_parser("_worker")  # internal: one throughput worker
    wk.add_argument("--url", required=True)
    wk.add_argument("--index", type=int, required=True)
    wk.add_argument("--trials", type=int, required=True)
    wk.add_argument("--epochs", type=int, required=True)

    args = ap.parse_args()
    # SIGTERM -> SystemExit, so that the database is still dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.cmd == "_worker":
        run_worker(args)
        return
    args.pg_url = args.pg_url.rstrip("/")

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    result = run_roundtrip(args) if args.cmd == "roundtrip" else run_throughput(args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    ensure_venv()
    main()
