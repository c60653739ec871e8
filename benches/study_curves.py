#!/usr/bin/env python3
"""Writes the curves of a foresight study as a curve set (JSON Lines, gzip).

    python3 benches/study_curves.py STUDY_DIR TASK_NAME OUT.jsonl.gz [METRIC]

Every trial that reported a score for each epoch up to the study's horizon
becomes one line in the format of docs/benchmarks.md (`source`, `task`,
`config_id` = the trial number, `config`, `metric`, `higher_is_better`,
`values`), so that `foresight predict` and `foresight replay` read it like
the shared sets. Only the journal (`STUDY_DIR/journal.jsonl`) is read.
"""
import gzip
import json
import sys


def main() -> None:
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    study, task, out = sys.argv[1:4]
    metric = sys.argv[4] if len(sys.argv) == 5 else "score"
    header, configs, scores = None, {}, {}
    with open(f"{study}/journal.jsonl") as f:
        for line in f:
            e = json.loads(line)
            if e["event"] == "study":
                header = e
            elif e["event"] == "start":
                configs[e["trial"]] = e["config"]
            elif e["event"] == "epoch":
                scores.setdefault(e["trial"], {})[e["epoch"]] = e["value"]
    if header is None:
        sys.exit(f"{study}/journal.jsonl has no study header")
    horizon = header["horizon"]
    maximize = header["objective"]["direction"] == "maximize"
    written = 0
    with gzip.open(out, "wt") as f:
        for trial in sorted(configs):
            by_epoch = scores.get(trial, {})
            if sorted(by_epoch) != list(range(1, horizon + 1)):
                continue
            record = {
                "source": "foresight-study",
                "task": task,
                "config_id": trial,
                "config": configs[trial],
                "metric": metric,
                "higher_is_better": maximize,
                "values": [by_epoch[e] for e in range(1, horizon + 1)],
            }
            f.write(json.dumps(record) + "\n")
            written += 1
    print(f"{written} curves of {horizon} epochs written to {out}")


if __name__ == "__main__":
    main()
