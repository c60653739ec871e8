#!/usr/bin/env python3
"""A training program for the command-trial tests: a synthetic curve (as
examples/command/train.py), and, for the trials named in --faults, what goes
wrong with real programs:

  fail     exits with status 3 after two epochs, "boom" on stderr
  hang     stops responding after one epoch
  nan      reports NaN at epoch 3 (as a key=value line)
  garbage  prints lines without the metric, and exits 0
  silent   prints nothing, and exits 0
  spawn    starts a child that would outlive it (`sleep 300`), and trains on

Every line also carries the devices and the worker it was given.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--epochs", type=int, default=int(os.environ["FORESIGHT_HORIZON"]))
parser.add_argument("--seconds-per-epoch", type=float, default=0.02)
parser.add_argument("--faults", default="")
args = parser.parse_args()

trial = int(os.environ["FORESIGHT_TRIAL"])
faults = dict(f.split(":") for f in args.faults.split(",") if f)
fault = faults.get(str(trial))

if fault == "silent":
    sys.exit(0)
if fault == "garbage":
    for i in range(5):
        print(f"loading shard {i}... val_loss=0.{i}", flush=True)
    sys.exit(0)
if fault == "spawn":
    child = subprocess.Popen(["sleep", "300"])
    with open(os.path.join(os.environ["FORESIGHT_TRIAL_DIR"], "grandchild.pid"), "w") as f:
        f.write(str(child.pid))

checkpoint = os.path.join(os.environ["FORESIGHT_CHECKPOINT_DIR"], "state.json")
start = 0
if os.path.exists(checkpoint):
    with open(checkpoint) as f:
        start = json.load(f)["epoch"]

limit = 0.95 - 0.8 * (args.x - 0.3) ** 2
for epoch in range(start + 1, args.epochs + 1):
    time.sleep(args.seconds_per_epoch)
    if fault == "fail" and epoch == 3:
        print("boom: out of memory", file=sys.stderr, flush=True)
        sys.exit(3)
    if fault == "hang" and epoch == 2:
        time.sleep(300)
    accuracy = limit * (1.0 - math.exp(-epoch / 3.0))
    if fault == "nan" and epoch == 3:
        print(f"epoch={epoch} val_accuracy=nan", flush=True)
        continue
    print(json.dumps({"epoch": epoch, "val_accuracy": accuracy,
                      "cuda": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
                      "worker": os.environ["FORESIGHT_WORKER"]}), flush=True)
    with open(checkpoint + ".tmp", "w") as f:
        json.dump({"epoch": epoch}, f)
    os.replace(checkpoint + ".tmp", checkpoint)
