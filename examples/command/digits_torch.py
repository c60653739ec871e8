#!/usr/bin/env python3
"""A real training script for `foresight tune`: a small convolutional network
on scikit-learn's handwritten digits (1797 images of 8x8 pixels, MNIST's little
sibling, bundled with scikit-learn: nothing to download), in PyTorch.

    pip install torch scikit-learn
    foresight tune examples/command/digits.toml

It shows what a script needs to be tuned by foresight (nothing of foresight's
is imported):

1. The configuration comes on the command line (the study file's `command`
   has `--lr {lr}` ...); the whole of it is also in $FORESIGHT_CONFIG (JSON).
2. Seed everything from $FORESIGHT_SEED, so that a trial is reproducible.
3. After every epoch print one JSON line with the epoch and the metric the
   study names (`val_accuracy`), flushed at once. Anything else may be printed
   too: foresight only reads the lines with the metric, and keeps all of the
   output in the trial's folder.
4. Save a checkpoint into $FORESIGHT_CHECKPOINT_DIR after every epoch, and
   start from it if it is there: a trial interrupted (Ctrl-C, a killed tuner,
   a lost machine) is started again with the same folder and goes on.
5. Train $FORESIGHT_HORIZON epochs and exit. A trial that will not beat the
   best gets SIGTERM and a grace period: the default handler is fine.

Each worker gets its own GPU when the study file lists `gpus` (foresight sets
CUDA_VISIBLE_DEVICES); without one this runs on the CPU, with the
$FORESIGHT_THREADS threads the trial may use.
"""

import argparse
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


class Net(nn.Module):
    def __init__(self, width, dropout):
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * width * 4 * 4, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(self.drop(torch.flatten(x, 1)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--weight-decay", type=float, required=True)
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--dropout", type=float, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    args = parser.parse_args()

    seed = int(os.environ.get("FORESIGHT_SEED", "0"))
    epochs = int(os.environ.get("FORESIGHT_HORIZON", "20"))
    torch.manual_seed(seed)
    torch.set_num_threads(int(os.environ.get("FORESIGHT_THREADS", "1")))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    # The same split in every trial (a fixed seed, not the trial's).
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target)
    x_train, x_valid, y_train, y_valid = train_test_split(
        x, y, test_size=0.25, stratify=y, random_state=20150419)
    x_train, y_train = x_train.to(device), y_train.to(device)
    x_valid, y_valid = x_valid.to(device), y_valid.to(device)

    model = Net(args.width, args.dropout).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)

    checkpoint = os.path.join(os.environ.get("FORESIGHT_CHECKPOINT_DIR", "."), "state.pt")
    start = 0
    if os.path.exists(checkpoint):
        state = torch.load(checkpoint, map_location=device)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        torch.set_rng_state(state["rng"])
        start = state["epoch"]

    for epoch in range(start + 1, epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), device=device)
        total = 0.0
        for i in range(0, len(order), args.batch_size):
            batch = order[i:i + args.batch_size]
            loss = F.cross_entropy(model(x_train[batch]), y_train[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        model.eval()
        with torch.no_grad():
            accuracy = (model(x_valid).argmax(1) == y_valid).float().mean().item()
        print(json.dumps({"epoch": epoch, "val_accuracy": accuracy,
                          "train_loss": total / len(x_train)}), flush=True)
        tmp = checkpoint + ".tmp"
        torch.save({"epoch": epoch, "model": model.state_dict(), "opt": opt.state_dict(),
                    "rng": torch.get_rng_state()}, tmp)
        os.replace(tmp, checkpoint)


if __name__ == "__main__":
    main()
