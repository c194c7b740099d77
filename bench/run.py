#!/usr/bin/env python3
"""kiln benchmark harness: wall time and peak memory of plan/apply on large `record` configs.

    python3 bench/run.py                      # everything, K=5 runs per measurement
    python3 bench/run.py --runs 3 --sizes 1000 --shapes fanout,chain
    python3 bench/run.py --markdown out.md    # also write the results table as Markdown
    python3 bench/run.py --decisions-only     # only the placement decisions (issue 14)
    python3 bench/run.py --placement-only     # only the plan time with placement (issue 14)

For each case (shape x size, from bench/gen.py) it measures, with KILN_QUIET=1 NO_COLOR=1 and
stdout sent to /dev/null:

  plan          `kiln plan` on empty state (no .kiln/)
  apply         `kiln apply --auto-approve` on empty state (.kiln/ deleted before every run,
                outside the timed region)
  noop-plan     `kiln plan` on the full state left by an apply (must say "No changes.")
  noop-plan-nr  `kiln plan --refresh=false` on the same full state

and the placement optimizer's decisions (`--decisions N`, issue 14): the median time of one
decision over N varied requests against the whole shipped catalog, K rounds, from the release
example `engine/kiln-place/examples/bench_decide.rs` (target: under 1 ms);

and the plan time with placement (`--placement-plan N`, issue 14): N clusters with varied requests
and a `placement` block planned in-process against a benchmark provider that offers the shipped
AWS catalog without IO, against the same N clusters with `provider =` and no placement; median
plan times over K rounds and their ratio, from the release example
`engine/kiln-core/examples/bench_placement.rs` (target: within 2x).

and prints the MEDIAN wall time over K runs and the PEAK memory (the largest max RSS of the kiln
process over those runs, from GNU time's %M when /usr/bin/time is GNU time, else from the
rusage that wait4() returns for the child, which has a ~14 MiB floor from the forked Python).
A measurement whose first run exceeds --slow-seconds does --slow-runs runs instead of K. The
binary is copied into the work directory first, so a concurrent `cargo build` cannot swap it.

Correctness is checked by one extra, untimed run per command whose stdout is captured: the
plans must say "Plan: N to add, 0 to change, 0 to destroy.", the apply "Resources: N added",
the no-change plans "No changes.". Exit status 1 if any check fails. Standard library only;
Linux.
"""
import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # keep bench/ free of __pycache__
import gen  # noqa: E402

MIB = 1024 * 1024

# Targets from the issue. Plan targets apply to every 10,000-resource plan (empty or full state).
PLAN_10K_SECONDS = 0.5
PLAN_10K_MIB = 150
APPLY_10K_SECONDS = 2.0
DELAY_SECONDS = 0.100
DELAYED_CRITICAL_PATH_FACTOR = 1.5

# Terraform 1.15 reference numbers given in the issue, measured on this kind of machine.
TERRAFORM = {
    ("fanout", 10000, "plan"): "~26 s, 660 MiB",
    ("fanout", 10000, "noop-plan"): "~20 s, 850 MiB",
    ("chain", 1000, "plan"): "~18 s",
    ("fanout", 1000, "apply"): "~36 s (apply of 1,000)",
    ("delayed", 1000, "apply"): "~50 s",
}

COMMANDS = {
    "plan": ["plan"],
    "apply": ["apply", "--auto-approve"],
    "noop-plan": ["plan"],
    "noop-plan-nr": ["plan", "--refresh=false"],
}


def target_for(shape, n, what):
    """(seconds, mib, text) target for a measurement, or None."""
    if shape == "delayed" and what == "apply":
        s = DELAY_SECONDS * DELAYED_CRITICAL_PATH_FACTOR
        return (s, None, f"<= {s:.2f} s (1.5 x critical path)")
    if n == 10000 and what in ("plan", "noop-plan", "noop-plan-nr"):
        return (PLAN_10K_SECONDS, PLAN_10K_MIB, f"< {PLAN_10K_SECONDS} s, < {PLAN_10K_MIB} MiB")
    if n == 10000 and what == "apply":
        return (APPLY_10K_SECONDS, None, f"< {APPLY_10K_SECONDS:g} s")
    return None


def gnu_time():
    """Path of GNU time if it works here, else None."""
    path = shutil.which("time", path="/usr/bin:/bin")
    if not path:
        return None
    with tempfile.NamedTemporaryFile() as f:
        r = subprocess.run([path, "-f", "%M", "-o", f.name, "true"], capture_output=True)
        try:
            int(open(f.name).read().split()[-1])
        except (ValueError, IndexError):
            return None
        return path if r.returncode == 0 else None


GNU_TIME = None  # set in main()


def run_once(kiln, workdir, args, env, capture=False):
    """Run kiln once; return (seconds, max_rss_bytes, returncode, stdout, stderr).

    Peak memory comes from GNU time's %M when available: ru_maxrss of a process started
    directly by Python includes the pre-exec copy of the Python interpreter (~14 MiB floor),
    while GNU time's own footprint is ~1 MiB. Without GNU time, wait4()'s rusage is used.
    """
    cmd = [kiln, f"--chdir={workdir}", *args]
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out, \
            tempfile.NamedTemporaryFile() as rssf:
        if GNU_TIME:
            cmd = [GNU_TIME, "-f", "%M", "-o", rssf.name, *cmd]
        stdout = out if capture else subprocess.DEVNULL
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=err, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        kib = ru.ru_maxrss
        if GNU_TIME:
            text = open(rssf.name).read().split()
            kib = int(text[-1]) if text else 0  # GNU time writes "Command exited..." first on failure
        err.seek(0)
        out.seek(0)
        return dt, kib * 1024, p.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace")


def fail(msg):
    print(f"\nERROR: {msg}", file=sys.stderr)
    sys.exit(1)


def reset_state(workdir):
    shutil.rmtree(os.path.join(workdir, ".kiln"), ignore_errors=True)


def measure(kiln, workdir, what, env, opts, before=None):
    """Timed runs of one command; `before` runs (untimed) before each."""
    times, rss = [], []
    runs = opts.runs
    i = 0
    while i < runs:
        if before:
            before()
        dt, peak, rc, _, err = run_once(kiln, workdir, COMMANDS[what], env)
        if rc != 0:
            fail(f"`kiln {' '.join(COMMANDS[what])}` in {workdir} exited {rc}:\n{err[-3000:]}")
        times.append(dt)
        rss.append(peak)
        if i == 0 and dt > opts.slow_seconds:
            runs = min(runs, opts.slow_runs)
        i += 1
    return {"runs": len(times), "median_s": statistics.median(times), "min_s": min(times),
            "max_s": max(times), "peak_mib": max(rss) / MIB, "times": times}


def check(kiln, workdir, what, env, pattern, label):
    _, _, rc, out, err = run_once(kiln, workdir, COMMANDS[what], env, capture=True)
    if rc != 0:
        fail(f"verification run of {label} exited {rc}:\n{err[-3000:]}")
    if not re.search(pattern, out):
        tail = "\n".join(out.strip().splitlines()[-5:])
        return f"FAIL ({label}: expected /{pattern}/, got: {tail!r})"
    return "ok"


def run_case(kiln, root, shape, n, env, opts):
    workdir = os.path.join(root, f"{shape}-{n}")
    gen.generate(shape, n, workdir)
    results = []
    checks = []

    def add(what, m):
        m.update(shape=shape, n=n, what=what)
        results.append(m)
        print_row(m)

    reset_state(workdir)
    add("plan", measure(kiln, workdir, "plan", env, opts))
    if not opts.no_verify:
        checks.append(check(kiln, workdir, "plan", env,
                            rf"Plan: {n} to add, 0 to change, 0 to destroy\.", "plan"))
    add("apply", measure(kiln, workdir, "apply", env, opts, before=lambda: reset_state(workdir)))
    # The state for the no-change plans: from the verification apply, or the last timed one.
    if not opts.no_verify:
        reset_state(workdir)
        checks.append(check(kiln, workdir, "apply", env,
                            rf"Resources: {n} added, 0 changed, 0 destroyed\.", "apply"))
    add("noop-plan", measure(kiln, workdir, "noop-plan", env, opts))
    add("noop-plan-nr", measure(kiln, workdir, "noop-plan-nr", env, opts))
    if not opts.no_verify:
        checks.append(check(kiln, workdir, "noop-plan", env, r"No changes\.", "no-change plan"))
        checks.append(check(kiln, workdir, "noop-plan-nr", env, r"No changes\.",
                            "no-change plan --refresh=false"))
    bad = [c for c in checks if c != "ok"]
    verdict = "not checked" if opts.no_verify else ("ok" if not bad else "; ".join(bad))
    for m in results:
        m["correct"] = verdict
    print(f"  correctness: {verdict}", flush=True)
    if not opts.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def verdict_for(m):
    t = target_for(m["shape"], m["n"], m["what"])
    if t is None:
        return ""
    secs, mib, text = t
    ok = m["median_s"] <= secs and (mib is None or m["peak_mib"] <= mib)
    parts = ["time ok" if m["median_s"] <= secs else f"time {m['median_s'] / secs:.1f}x the target"]
    if mib is not None:
        parts.append("memory ok" if m["peak_mib"] <= mib else f"memory {m['peak_mib'] / mib:.1f}x the target")
    return f"{text}: " + ("met" if ok else "MISSED") + " (" + ", ".join(parts) + ")"


HEAD = f"{'shape':<8} {'N':>6} {'command':<13} {'runs':>4} {'median s':>9} {'min s':>7} {'max s':>7} {'peak MiB':>9}  target / Terraform 1.15"


def print_row(m):
    extra = "; ".join(x for x in (verdict_for(m), tf_for(m)) if x)
    print(f"{m['shape']:<8} {m['n']:>6} {m['what']:<13} {m['runs']:>4} {m['median_s']:>9.3f} "
          f"{m['min_s']:>7.3f} {m['max_s']:>7.3f} {m['peak_mib']:>9.1f}  {extra}", flush=True)


def tf_for(m):
    t = TERRAFORM.get((m["shape"], m["n"], m["what"]))
    return f"Terraform {t}" if t else ""


def markdown(results):
    lines = ["| shape | N | command | runs | median wall (s) | min–max (s) | peak RSS (MiB) | target | Terraform 1.15 |",
             "|---|---:|---|---:|---:|---:|---:|---|---|"]
    for m in results:
        t = verdict_for(m)
        lines.append(f"| {m['shape']} | {m['n']:,} | {m['what']} | {m['runs']} | {m['median_s']:.3f} | "
                     f"{m['min_s']:.3f}–{m['max_s']:.3f} | {m['peak_mib']:.0f} | {t} | "
                     f"{TERRAFORM.get((m['shape'], m['n'], m['what']), '')} |")
    return "\n".join(lines) + "\n"


def git_describe():
    """Commit of the workspace, and whether its source differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench",
                                ":!BENCHMARKS.md"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return f"commit {head}" + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"


DECISION_TARGET_US = 1000.0


def run_decisions(opts):
    """The placement decision benchmark: one JSON line from the bench_decide example."""
    exe = os.path.join(ROOT, "target", "release", "examples", "bench_decide")
    if not opts.no_build:
        print("building: cargo build --release --locked -p kiln-place --example bench_decide", file=sys.stderr, flush=True)
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "kiln-place", "--example", "bench_decide"],
                       cwd=ROOT, check=True)
    if not os.access(exe, os.X_OK):
        print(f"\nplacement decisions: skipped (no {exe}; build it with cargo build --release -p kiln-place "
              "--example bench_decide)", flush=True)
        return None
    out = subprocess.run([exe, "--requests", str(opts.decisions), "--rounds", str(opts.runs)],
                         capture_output=True, text=True, check=True).stdout
    m = json.loads(out.strip().splitlines()[-1])
    m["met"] = m["median_us"] < DECISION_TARGET_US
    print(f"\nplacement decisions: {m['requests']} requests x {m['rounds']} rounds against {m['candidates']} "
          f"offerings ({m['feasible']} feasible): median {m['median_us']:.1f} us, p90 {m['p90_us']:.1f} us, "
          f"max {m['max_us']:.1f} us; target < {DECISION_TARGET_US:g} us: {'met' if m['met'] else 'MISSED'}",
          flush=True)
    return m


PLACEMENT_PLAN_TARGET_RATIO = 2.0


def run_placement_plan(opts):
    """The plan-time-with-placement benchmark: one JSON line from the bench_placement example."""
    exe = os.path.join(ROOT, "target", "release", "examples", "bench_placement")
    if not opts.no_build:
        print("building: cargo build --release --locked -p kiln-core --example bench_placement", file=sys.stderr, flush=True)
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "kiln-core", "--example", "bench_placement"],
                       cwd=ROOT, check=True)
    if not os.access(exe, os.X_OK):
        print(f"\nplan time with placement: skipped (no {exe}; build it with cargo build --release -p kiln-core "
              "--example bench_placement)", flush=True)
        return None
    # A private copy: a concurrent `cargo build` in a shared workspace may replace the binary.
    with tempfile.TemporaryDirectory(prefix="kiln-bench-placement-") as tmp:
        snap = os.path.join(tmp, "bench_placement")
        shutil.copy2(exe, snap)
        out = subprocess.run([snap, "--clusters", str(opts.placement_plan), "--rounds", str(opts.runs)],
                             capture_output=True, text=True, check=True).stdout
    m = json.loads(out.strip().splitlines()[-1])
    m["met"] = m["ratio"] <= PLACEMENT_PLAN_TARGET_RATIO
    print(f"\nplan time with placement: {m['clusters']} clusters ({m['distinct_requests']} distinct requests) against "
          f"{m['offerings']} AWS offerings, benchmark provider, {m['rounds']} rounds: plain plan median "
          f"{m['plain_plan_ms']:.1f} ms, placed {m['placed_plan_ms']:.1f} ms, ratio {m['ratio']:.2f} "
          f"(CPU time: {m['plain_plan_cpu_ms']:.1f} ms vs {m['placed_plan_cpu_ms']:.1f} ms, {m['cpu_ratio']:.2f}; with config load: {m['plain_load_plan_ms']:.1f} ms vs {m['placed_load_plan_ms']:.1f} ms, "
          f"{m['ratio_with_load']:.2f}); target <= {PLACEMENT_PLAN_TARGET_RATIO:g}x: {'met' if m['met'] else 'MISSED'}",
          flush=True)
    return m


def placement_plan_markdown(m):
    return ("\n| clusters | distinct requests | rounds | plain plan (ms) | placed plan (ms) | ratio | "
            "CPU time (ms) | CPU ratio | with config load (ms) | ratio with load | target |\n"
            "|---:|---:|---:|---:|---:|---:|---|---:|---|---:|---|\n"
            f"| {m['clusters']:,} | {m['distinct_requests']} | {m['rounds']} | {m['plain_plan_ms']:.1f} | "
            f"{m['placed_plan_ms']:.1f} | {m['ratio']:.2f} | {m['plain_plan_cpu_ms']:.1f} vs {m['placed_plan_cpu_ms']:.1f} | "
            f"{m['cpu_ratio']:.2f} | {m['plain_load_plan_ms']:.1f} vs "
            f"{m['placed_load_plan_ms']:.1f} | {m['ratio_with_load']:.2f} | "
            f"<= 2x: {'met' if m['met'] else 'MISSED'} |\n")


def decisions_markdown(m):
    return ("\n| decisions | candidates | feasible | rounds | median (us) | p90 (us) | max (us) | target |\n"
            "|---:|---:|---:|---:|---:|---:|---:|---|\n"
            f"| {m['requests']:,} | {m['candidates']} | {m['feasible']} | {m['rounds']} | {m['median_us']:.1f} | "
            f"{m['p90_us']:.1f} | {m['max_us']:.1f} | < 1 ms: {'met' if m['met'] else 'MISSED'} |\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", "-k", type=int, default=5, help="timed runs per measurement (default 5)")
    ap.add_argument("--slow-runs", type=int, default=3,
                    help="runs for a measurement whose first run is slow (default 3)")
    ap.add_argument("--slow-seconds", type=float, default=5.0,
                    help="a first run longer than this is slow (default 5)")
    ap.add_argument("--shapes", default="fanout,chain,layered",
                    help="comma-separated shapes from gen.py (default fanout,chain,layered)")
    ap.add_argument("--sizes", default="1000,10000", help="comma-separated sizes (default 1000,10000)")
    ap.add_argument("--delayed", type=int, default=1000,
                    help="size of the delayed fanout (create_delay 100ms); 0 skips it (default 1000)")
    ap.add_argument("--decisions", type=int, default=1000,
                    help="placement decisions to time against the shipped catalog; 0 skips them (default 1000)")
    ap.add_argument("--decisions-only", action="store_true",
                    help="run only the placement decision benchmark (no kiln build, no plan/apply cases)")
    ap.add_argument("--placement-plan", type=int, default=1000,
                    help="clusters planned with and without placement (issue 14); 0 skips it (default 1000)")
    ap.add_argument("--placement-only", action="store_true",
                    help="run only the plan-time-with-placement benchmark (no kiln build, no plan/apply cases)")
    ap.add_argument("--kiln", help="kiln binary to use (default: build target/release/kiln)")
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build --release")
    ap.add_argument("--no-verify", action="store_true", help="skip the untimed correctness runs")
    ap.add_argument("--workdir", help="where to generate configs (default: a fresh temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep generated configs and state")
    ap.add_argument("--no-gnu-time", action="store_true",
                    help="read max RSS from wait4() instead of /usr/bin/time (adds a ~14 MiB floor)")
    ap.add_argument("--markdown", help="also write the results table as Markdown to this file")
    ap.add_argument("--json", help="also write raw results (every run's time) as JSON to this file")
    opts = ap.parse_args()
    if opts.runs < 1 or opts.slow_runs < 1:
        ap.error("--runs and --slow-runs must be >= 1")
    if opts.placement_only:
        if opts.placement_plan < 1:
            ap.error("--placement-only needs --placement-plan >= 1")
        m = run_placement_plan(opts)
        if m and opts.markdown:
            with open(opts.markdown, "w") as f:
                f.write(placement_plan_markdown(m))
        return 0 if m else 1
    if opts.decisions_only:
        if opts.decisions < 1:
            ap.error("--decisions-only needs --decisions >= 1")
        m = run_decisions(opts)
        if m and opts.markdown:
            with open(opts.markdown, "w") as f:
                f.write(decisions_markdown(m))
        return 0 if m else 1

    kiln = opts.kiln or os.path.join(ROOT, "target", "release", "kiln")
    if not opts.kiln and not opts.no_build:
        print("building: cargo build --release --locked", file=sys.stderr, flush=True)
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "kiln", "--bin", "kiln"],
                       cwd=ROOT, check=True)
    if not os.access(kiln, os.X_OK):
        fail(f"no kiln binary at {kiln}")

    global GNU_TIME
    GNU_TIME = None if opts.no_gnu_time else gnu_time()
    env = dict(os.environ, KILN_QUIET="1", NO_COLOR="1")
    env.pop("KILN_LOG", None)
    root = opts.workdir or tempfile.mkdtemp(prefix="kiln-bench-")
    os.makedirs(root, exist_ok=True)

    cases = [(s, int(n)) for n in opts.sizes.split(",") if n for s in opts.shapes.split(",") if s]
    if opts.delayed:
        cases.append(("delayed", opts.delayed))
    for s, _ in cases:
        if s not in gen.SHAPES:
            ap.error(f"unknown shape {s!r}")

    # Run a private copy: a concurrent `cargo build` in a shared workspace may replace the binary.
    snap = os.path.join(root, "kiln")
    shutil.copy2(kiln, snap)
    origin = kiln
    kiln = snap
    version = subprocess.run([kiln, "version"], capture_output=True, text=True).stdout.strip()
    print(f"kiln: {origin} ({version}), workspace at {git_describe()}")
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cpus, "
          f"load avg {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"peak memory from: {'GNU time %M (' + GNU_TIME + ')' if GNU_TIME else 'wait4() ru_maxrss'}")
    print(f"runs: K={opts.runs} (slow: {opts.slow_runs} when first run > {opts.slow_seconds:g} s); "
          f"median wall time, peak = max RSS over the runs\n")
    print(HEAD, flush=True)
    results = []
    try:
        for shape, n in cases:
            results += run_case(kiln, root, shape, n, env, opts)
    finally:
        if not opts.keep and not opts.workdir:
            shutil.rmtree(root, ignore_errors=True)

    decisions = run_decisions(opts) if opts.decisions > 0 else None
    placement = run_placement_plan(opts) if opts.placement_plan > 0 else None
    missed = [m for m in results if "MISSED" in verdict_for(m)]
    if decisions and not decisions["met"]:
        missed.append(decisions)
    if placement and not placement["met"]:
        missed.append(placement)
    wrong = [m for m in results if m["correct"] not in ("ok", "not checked")]
    print(f"\n{len(results)} measurements; targets missed: {len(missed)}; correctness failures: "
          f"{len({(m['shape'], m['n']) for m in wrong})} case(s)")
    if opts.markdown:
        with open(opts.markdown, "w") as f:
            f.write(markdown(results))
            if decisions:
                f.write(decisions_markdown(decisions))
            if placement:
                f.write(placement_plan_markdown(placement))
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(results, f, indent=1)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
