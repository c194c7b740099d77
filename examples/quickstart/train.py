#!/usr/bin/env python3
"""kiln quickstart: a logistic regression trained by gradient descent, with checkpoints.

Standard library only. Every node trains on its shard of a generated data set (node
KILN_NODE_RANK of KILN_NUM_NODES) and prints its loss at each step. Rank 0 writes a checkpoint
(step, weights, loss) to KILN_CHECKPOINT_DIR every CHECKPOINT_EVERY steps and, at the end,
result.json with the final loss. Started again, every node resumes from the latest checkpoint.

Knobs (environment): TRAIN_STEPS (100), CHECKPOINT_EVERY (10), TRAIN_STEP_SLEEP (seconds per
step, 0.08: the demo should last long enough to watch), TRAIN_FAIL_AT_STEP (exit with an error
at that step, to try a crash and a resume).
"""

import json
import math
import os
import random
import sys
import time

RANK = int(os.environ.get("KILN_NODE_RANK", "0"))
NODES = int(os.environ.get("KILN_NUM_NODES", "1"))
CKPT_DIR = os.environ.get("KILN_CHECKPOINT_DIR", "checkpoints")
STEPS = int(os.environ.get("TRAIN_STEPS", "100"))
EVERY = int(os.environ.get("CHECKPOINT_EVERY", "10"))
STEP_SLEEP = float(os.environ.get("TRAIN_STEP_SLEEP", "0.08"))
FAIL_AT = int(os.environ.get("TRAIN_FAIL_AT_STEP", "0"))
LEARNING_RATE = 0.5
FEATURES = 8
SAMPLES = 2000


def sigmoid(z):
    z = max(-30.0, min(30.0, z))
    return 1.0 / (1.0 + math.exp(-z))


def shard():
    """The same data set on every node (fixed seed); this node keeps every NODES-th sample."""
    rng = random.Random(1234)
    true_w = [rng.uniform(-2.0, 2.0) for _ in range(FEATURES)]
    data = []
    for _ in range(SAMPLES):
        x = [rng.gauss(0.0, 1.0) for _ in range(FEATURES)]
        p = sigmoid(sum(a * b for a, b in zip(true_w, x)))
        data.append((x, 1.0 if rng.random() < p else 0.0))
    return data[RANK::NODES]


def loss(w, b, data):
    total = 0.0
    for x, y in data:
        p = min(max(sigmoid(sum(a * c for a, c in zip(w, x)) + b), 1e-12), 1.0 - 1e-12)
        total -= y * math.log(p) + (1.0 - y) * math.log(1.0 - p)
    return total / len(data)


def step(w, b, data):
    """One gradient descent step on the whole shard."""
    gw = [0.0] * FEATURES
    gb = 0.0
    for x, y in data:
        err = sigmoid(sum(a * c for a, c in zip(w, x)) + b) - y
        for i in range(FEATURES):
            gw[i] += err * x[i]
        gb += err
    n = len(data)
    return [wi - LEARNING_RATE * g / n for wi, g in zip(w, gw)], b - LEARNING_RATE * gb / n


def write_json(path, obj):
    """Atomically, so a reader (or a crash) never sees half a file."""
    tmp = f"{path}.tmp-{RANK}"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def latest_checkpoint():
    names = sorted(n for n in os.listdir(CKPT_DIR) if n.startswith("ckpt-") and n.endswith(".json"))
    if not names:
        return None
    with open(os.path.join(CKPT_DIR, names[-1])) as f:
        return json.load(f)


def main():
    os.makedirs(CKPT_DIR, exist_ok=True)
    data = shard()
    w, b, start = [0.0] * FEATURES, 0.0, 0
    ckpt = latest_checkpoint()
    if ckpt:
        w, b, start = ckpt["weights"], ckpt["bias"], ckpt["step"]
        print(f"rank {RANK}: resuming from checkpoint at step {start} (loss {ckpt['loss']:.4f})")
    else:
        print(f"rank {RANK}: starting, {len(data)} samples on this node of {NODES}")
    current = loss(w, b, data)
    for s in range(start + 1, STEPS + 1):
        if s == FAIL_AT:
            print(f"rank {RANK}: failing at step {s} as TRAIN_FAIL_AT_STEP asks", file=sys.stderr)
            sys.exit(1)
        w, b = step(w, b, data)
        current = loss(w, b, data)
        print(f"rank {RANK} step {s} loss {current:.4f}")
        if RANK == 0 and s % EVERY == 0:
            write_json(os.path.join(CKPT_DIR, f"ckpt-{s:06d}.json"), {"step": s, "weights": w, "bias": b, "loss": current})
        time.sleep(STEP_SLEEP)
    if RANK == 0:
        write_json(os.path.join(CKPT_DIR, "result.json"), {"final_loss": round(current, 6), "steps": STEPS, "nodes": NODES})
    print(f"rank {RANK}: done, final loss {current:.4f}")


if __name__ == "__main__":
    main()
