#!/usr/bin/env python3
"""A training script for `foresight tune`, with no dependencies: instead of a
model it computes a synthetic learning curve, whose level and speed depend on
the configuration as a real network's would (a learning rate too high or too
low, a width too small), with a little noise.

It follows foresight's protocol for training programs:

* the configuration comes on the command line (`--learning-rate {learning_rate}
  --width {width}` in `study.toml`); all of it is also in the JSON file named by
  FORESIGHT_CONFIG;
* every random choice comes from FORESIGHT_SEED;
* it prints one JSON line per epoch on stdout, with the epoch and the metric
  (`val_accuracy`), flushed at once;
* it keeps a checkpoint in FORESIGHT_CHECKPOINT_DIR after every epoch and, when
  started again for the same trial (after an interruption), continues from it;
* it trains FORESIGHT_HORIZON epochs and exits.

Run it alone: python3 examples/command/train.py --learning-rate 0.003 --width 64
"""

import argparse
import json
import math
import os
import random
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learning-rate", type=float, required=True)
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--epochs", type=int, default=int(os.environ.get("FORESIGHT_HORIZON", "20")))
    parser.add_argument("--seconds-per-epoch", type=float, default=0.1)
    args = parser.parse_args()

    seed = int(os.environ.get("FORESIGHT_SEED", "0"))
    # The curve: accuracy rises towards a limit that is best at a learning
    # rate near 3e-3 and a width near 128, at a speed set by the learning rate.
    lr = math.log10(args.learning_rate)
    limit = 0.95 - 0.07 * (lr + 2.5) ** 2 - 0.06 * abs(math.log2(args.width / 128.0))
    speed = 0.08 + 0.06 * (lr + 4.0)

    checkpoint = None
    if os.environ.get("FORESIGHT_CHECKPOINT_DIR"):
        checkpoint = os.path.join(os.environ["FORESIGHT_CHECKPOINT_DIR"], "state.json")
    start = 0
    if checkpoint and os.path.exists(checkpoint):
        with open(checkpoint) as f:
            start = json.load(f)["epoch"]

    for epoch in range(start + 1, args.epochs + 1):
        time.sleep(args.seconds_per_epoch)
        # Each epoch's noise from the seed and the epoch: the same run again
        # (or continued from a checkpoint) gives the same curve.
        noise = random.Random(seed * 100003 + epoch).gauss(0.0, 0.004)
        accuracy = max(0.0, min(1.0, limit * (1.0 - math.exp(-speed * epoch)) + noise))
        print(json.dumps({"epoch": epoch, "val_accuracy": round(accuracy, 5),
                          "train_loss": round(2.3 * (1.0 - accuracy), 5)}), flush=True)
        if checkpoint:
            tmp = checkpoint + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"epoch": epoch}, f)
            os.replace(tmp, checkpoint)


if __name__ == "__main__":
    main()
