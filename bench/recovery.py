#!/usr/bin/env python3
"""kiln benchmark: recovery of a local training job by `kiln watch` (issue 15).

    cargo build --release -p kiln --no-default-features   # the local provider is enough
    python3 bench/recovery.py                             # K=5 kills at the default interval (5s)
    python3 bench/recovery.py --runs 5 --interval 1s --kiln target/release/kiln

Each run copies examples/quickstart into a temporary directory, makes its job long (a step every
0.1 s, a checkpoint every CHECKPOINT_EVERY steps) with a `recovery` block, applies it, starts
`kiln watch --interval I`, waits for a few checkpoints, then SIGKILLs every process group of the
job (as a crash or the OOM killer would; the local provider reports `host_failure`). It measures,
from the kill:

  detected   when kiln recorded the failure (the `detected` event's time in state)
  relaunched when the new job was running (the `relaunched` event's time)
  resumed    when the new job's rank 0 printed that it resumed from a checkpoint
  lost steps steps trained before the kill that the new job trains again (last step the old
             job printed minus the checkpoint it resumed from): at most one checkpoint interval

and prints the median, min and max of each over K runs, as a table and one JSON line. The
detection target (issue 15): under the poll interval where the provider offers no event (local).
Standard library only; Linux.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVERY = 10


def kiln(binary, cwd, *args, check=True):
    env = dict(os.environ, KILN_QUIET="1", NO_COLOR="1")
    r = subprocess.run([binary, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        sys.exit(f"kiln {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


def wait_for(what, cond, bound=120.0, every=0.02):
    start = time.time()
    while time.time() - start < bound:
        v = cond()
        if v:
            return v
        time.sleep(every)
    sys.exit(f"timed out waiting for {what}")


def seconds(duration):
    """`5s`, `1m`: what `--interval` takes (s, m, h)."""
    units = {"s": 1, "m": 60, "h": 3600}
    return float(duration[:-1]) * units[duration[-1]]


def job_values(binary, cwd):
    show = json.loads(kiln(binary, cwd, "show", "--json"))
    for r in show.get("resources", []):
        if r["address"] == "job.train":
            return r["values"]
    return None


def events(binary, cwd):
    return json.loads(kiln(binary, cwd, "jobs", "events", "job.train", "--json"))


def at(event):
    return datetime.fromisoformat(event["at"].replace("Z", "+00:00")).timestamp()


def last_step(log):
    steps = re.findall(r"^rank 0 step (\d+) ", log, re.M)
    return int(steps[-1]) if steps else 0


def one_run(binary, interval):
    work = tempfile.mkdtemp(prefix="kiln-recovery-")
    shutil.copytree(os.path.join(ROOT, "examples/quickstart"), work, dirs_exist_ok=True)
    path = os.path.join(work, "main.kiln.hcl")
    text = open(path).read()
    text = text.replace(
        'TRAIN_STEPS = "100"',
        f'TRAIN_STEPS      = "100000"\n    TRAIN_STEP_SLEEP = "0.1"\n    CHECKPOINT_EVERY = "{EVERY}"',
    )
    text = text.replace("  checkpoint {", "  recovery {\n    max_restarts = 3\n  }\n\n  checkpoint {", 1)
    open(path, "w").write(text)
    watch = None
    try:
        kiln(binary, work, "apply", "--auto-approve")
        watch = subprocess.Popen(
            [binary, "watch", "--interval", interval],
            cwd=work,
            env=dict(os.environ, NO_COLOR="1"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        ckpt = os.path.join(work, ".kiln/buckets/checkpoints/run-1")
        # A few checkpoints, then a kill at a point of the watch's poll interval and of the
        # checkpoint interval drawn afresh each run (uniformly over the poll interval).
        wait_for("checkpoints", lambda: os.path.exists(os.path.join(ckpt, f"ckpt-{3 * EVERY:06d}.json")))
        time.sleep(random.uniform(0.0, seconds(interval)))
        old = job_values(binary, work)
        log_path = os.path.join(work, ".kiln/jobs", old["job_id"], "node-0.log")
        t0 = time.time()
        for g in old["pids"]:
            try:
                os.killpg(int(g), signal.SIGKILL)
            except ProcessLookupError:
                pass
        before = last_step(open(log_path).read())
        seen = wait_for("the relaunched event", lambda: (lambda e: e if any(x["kind"] == "relaunched" for x in e) else None)(events(binary, work)))
        detected = next(x for x in seen if x["kind"] == "detected")
        relaunched = next(x for x in seen if x["kind"] == "relaunched")
        new = job_values(binary, work)
        new_log = os.path.join(work, ".kiln/jobs", new["job_id"], "node-0.log")

        def resumed():
            try:
                m = re.search(r"rank 0: resuming from checkpoint at step (\d+)", open(new_log).read())
            except FileNotFoundError:
                return None
            return (time.time(), int(m.group(1))) if m else None

        t_resumed, from_step = wait_for("the new job to resume", resumed, every=0.01)
        return {
            "detected_s": at(detected) - t0,
            "relaunched_s": at(relaunched) - t0,
            "resumed_s": t_resumed - t0,
            "lost_steps": before - from_step,
        }
    finally:
        if watch is not None:
            watch.send_signal(signal.SIGINT)
            try:
                watch.wait(timeout=60)
            except subprocess.TimeoutExpired:
                watch.kill()
        kiln(binary, work, "destroy", "--auto-approve", check=False)
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln", default=os.path.join(ROOT, "target/release/kiln"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--interval", default="5s")
    a = ap.parse_args()
    binary = shutil.copy(a.kiln, os.path.join(tempfile.mkdtemp(prefix="kiln-bin-"), "kiln"))
    runs = [one_run(binary, a.interval) for _ in range(a.runs)]
    print(f"kiln watch --interval {a.interval}, {a.runs} kills, checkpoint every {EVERY} steps of 0.1 s")
    print(f"{'measure':<14}{'median':>10}{'min':>10}{'max':>10}")
    summary = {"interval": a.interval, "runs": a.runs, "checkpoint_every_steps": EVERY}
    for key in ["detected_s", "relaunched_s", "resumed_s", "lost_steps"]:
        xs = [r[key] for r in runs]
        summary[key] = {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}
        print(f"{key:<14}{statistics.median(xs):>10.2f}{min(xs):>10.2f}{max(xs):>10.2f}")
    print(json.dumps(summary))
    if max(r["lost_steps"] for r in runs) > EVERY:
        sys.exit("a kill lost more than one checkpoint interval of work")


if __name__ == "__main__":
    main()
