#!/usr/bin/env python3
"""kiln's AWS provider benchmark, against moto's AWS API server (the test harness's
tests/harness/moto/kiln_moto.py): apply of an N-instance cluster and a no-change plan of it.

    python3 bench/aws.py                      # N = 500 t3.micro, 3 runs each, builds release
    python3 bench/aws.py --nodes 2000 --runs 5 --no-build

It starts the server on a free loopback port (from the moto venv the tests use: KILN_MOTO_VENV,
else $CARGO_TARGET_DIR/moto-venv, else target/moto-venv; created with the pinned requirements
when missing), wrapped in a counter of the API calls it receives, and measures, with
KILN_QUIET=1 NO_COLOR=1 and test credentials:

  apply       `kiln apply --auto-approve` of `resource "cluster" { nodes = N }` on empty state
              (moto reset and .kiln/ deleted before every run, untimed)
  noop-plan   `kiln plan --verbose --detailed-exitcode` on the state the apply left (exit 0:
              no changes)

It prints the median wall time over the runs and the API calls by operation: as the server
counted them (every attempt, retries included) and, for plans, as `kiln plan --verbose`
reports them. Check: the no-change plan makes at most one DescribeInstances call per 1,000
instances (rounded up); exit status 1 otherwise, or when a run fails. The binary is copied
first, so a concurrent `cargo build` cannot replace it mid-run. Times include moto's own work
(a Python server, single process), which dominates: they measure kiln + emulator, not AWS.
"""
import argparse
import io
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HARNESS = os.path.join(ROOT, "tests", "harness", "moto")
sys.dont_write_bytecode = True  # keep bench/ and the harness free of __pycache__

CONFIG = """variable "endpoint" {{
  type = string
}}

provider "aws" {{
  region   = "us-east-1"
  endpoint = var.endpoint
}}

resource "cluster" "bench" {{
  provider      = aws
  instance_type = "{instance_type}"
  nodes         = {nodes}
}}
"""


# --------------------------------------------------------------------------------------------
# Server mode: run by the venv's python (`aws.py --serve PORT_FILE`).

def serve(port_file):
    """kiln_moto's app behind a counter of API calls by operation (GET/DELETE /_bench/calls)."""
    sys.path.insert(0, HARNESS)
    import kiln_moto  # noqa: E402  (needs moto: runs in the venv)
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    inner = kiln_moto.TestbedApp(DomainDispatcherApplication(create_backend_app))
    calls = {}
    lock = threading.Lock()

    def operation(environ):
        if environ["REQUEST_METHOD"] == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            action = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action")
            if action:
                return action[0]
        query = environ.get("QUERY_STRING", "")
        return f"S3 {environ['REQUEST_METHOD']}" + (f" ?{query.split('=')[0]}" if query else "")

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/_bench/calls":
            with lock:
                if environ["REQUEST_METHOD"] == "DELETE":
                    calls.clear()
                body = json.dumps(calls).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if not path.startswith("/_testbed/") and not path.startswith("/moto-api/"):
            op = operation(environ)
            with lock:
                calls[op] = calls.get(op, 0) + 1
        return inner(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_port))
    os.replace(tmp, port_file)
    threading.Thread(target=kiln_moto.exit_with_parent, args=(os.getppid(),), daemon=True).start()
    server.serve_forever()


# --------------------------------------------------------------------------------------------
# Driver mode.

def fail(msg):
    print(f"\nERROR: {msg}", file=sys.stderr)
    sys.exit(1)


def venv_dir():
    if os.environ.get("KILN_MOTO_VENV"):
        return os.environ["KILN_MOTO_VENV"]
    return os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "moto-venv")


def ensure_venv():
    """The venv with the pinned moto, created like the tests create it when missing."""
    venv = venv_dir()
    python = os.path.join(venv, "bin", "python")
    req = os.path.join(HARNESS, "requirements.txt")
    pinned = next(l for l in open(req) if l.startswith("moto")).split("==")[1].strip()
    check = f"import moto, sys; sys.exit(0 if moto.__version__ == '{pinned}' else 1)"
    if os.access(python, os.X_OK) and subprocess.run([python, "-c", check], stderr=subprocess.DEVNULL).returncode == 0:
        return python
    print(f"creating the moto venv in {venv} (about a minute)", file=sys.stderr, flush=True)
    partial = f"{venv}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", partial], check=True)
    subprocess.run([os.path.join(partial, "bin", "python"), "-m", "pip", "install", "-q", "-r", req], check=True)
    shutil.rmtree(venv, ignore_errors=True)
    os.rename(partial, venv)
    return python


class Server:
    def __init__(self, python, workdir):
        port_file = os.path.join(workdir, "moto-port")
        self.log = open(os.path.join(workdir, "moto.log"), "w")
        self.proc = subprocess.Popen([python, os.path.abspath(__file__), "--serve", port_file],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                fail(f"the moto server did not start; see {self.log.name}")
            time.sleep(0.05)
        self.endpoint = f"http://127.0.0.1:{int(open(port_file).read())}"

    def request(self, method, path):
        req = urllib.request.Request(self.endpoint + path, method=method, data=b"" if method != "GET" else None)
        with urllib.request.urlopen(req) as r:
            return r.read()

    def reset(self):
        self.request("POST", "/moto-api/reset")

    def calls(self, clear=False):
        return json.loads(self.request("DELETE" if clear else "GET", "/_bench/calls"))

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


def run_kiln(kiln, workdir, args, env):
    """(seconds, returncode, stdout, stderr) of one kiln run."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.run([kiln, f"--chdir={workdir}", *args], stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        dt = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        return dt, p.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace")


def reported_calls(stderr):
    """`aws: N API call(s): Op n, ...` from `kiln plan --verbose`, by operation."""
    m = re.search(r"^aws: \d+ API call\(s\): (.*)$", stderr, re.M)
    if not m:
        return None
    return {op: int(n) for op, n in (part.strip().rsplit(" ", 1) for part in m.group(1).split(",") if part.strip())}


def fmt_calls(calls):
    total = sum(calls.values())
    return f"{total} ({', '.join(f'{k} {v}' for k, v in sorted(calls.items()))})"


def git_describe():
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench",
                                ":!BENCHMARKS.md"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return f"commit {head}" + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", metavar="PORT_FILE", help=argparse.SUPPRESS)
    ap.add_argument("--nodes", "-n", type=int, default=500, help="instances in the cluster (default 500)")
    ap.add_argument("--instance-type", default="t3.micro", help="instance type (default t3.micro)")
    ap.add_argument("--runs", "-k", type=int, default=3, help="timed runs per measurement (default 3)")
    ap.add_argument("--kiln", help="kiln binary to use (default: build target/release/kiln)")
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build --release")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (config, state, moto log)")
    opts = ap.parse_args()
    if opts.serve:
        return serve(opts.serve)
    if opts.runs < 1 or opts.nodes < 1:
        ap.error("--runs and --nodes must be >= 1")

    kiln = opts.kiln or os.path.join(ROOT, "target", "release", "kiln")
    if not opts.kiln and not opts.no_build:
        print("building: cargo build --release --locked", file=sys.stderr, flush=True)
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "kiln", "--bin", "kiln"], cwd=ROOT, check=True)
    if not os.access(kiln, os.X_OK):
        fail(f"no kiln binary at {kiln}")
    python = ensure_venv()

    root = tempfile.mkdtemp(prefix="kiln-bench-aws-")
    project = os.path.join(root, "project")
    os.makedirs(project)
    with open(os.path.join(project, "main.kiln.hcl"), "w") as f:
        f.write(CONFIG.format(nodes=opts.nodes, instance_type=opts.instance_type))
    snap = os.path.join(root, "kiln")
    shutil.copy2(kiln, snap)
    server = Server(python, root)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KILN_"))}
    env.update(KILN_QUIET="1", NO_COLOR="1", AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_EC2_METADATA_DISABLED="true")
    var = ["--var", f"endpoint={server.endpoint}"]
    version = subprocess.run([snap, "version"], capture_output=True, text=True).stdout.strip()
    print(f"kiln: {kiln} ({version}), workspace at {git_describe()}")
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cpus, "
          f"load avg {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"moto: {server.endpoint} ({python}); cluster of {opts.nodes} x {opts.instance_type}; "
          f"{opts.runs} runs each, median wall time\n", flush=True)

    ok = True
    try:
        applies, apply_calls = [], None
        for i in range(opts.runs):
            server.reset()
            shutil.rmtree(os.path.join(project, ".kiln"), ignore_errors=True)
            server.calls(clear=True)
            dt, rc, out, err = run_kiln(snap, project, ["apply", "--auto-approve", *var], env)
            if rc != 0 or "Resources: 1 added, 0 changed, 0 destroyed." not in out:
                fail(f"apply run {i + 1} failed (exit {rc}):\n{out[-2000:]}\n{err[-2000:]}")
            applies.append(dt)
            apply_calls = server.calls()
            print(f"  apply run {i + 1}: {dt:.2f} s", flush=True)

        plans, plan_calls, plan_reported, refreshes = [], None, None, []
        for i in range(opts.runs):
            server.calls(clear=True)
            dt, rc, out, err = run_kiln(snap, project, ["plan", "--verbose", "--detailed-exitcode", *var], env)
            if rc != 0:
                fail(f"no-change plan run {i + 1} exited {rc} (0 = no changes expected):\n{out[-2000:]}\n{err[-2000:]}")
            plans.append(dt)
            plan_calls = server.calls()
            plan_reported = reported_calls(err)
            m = re.search(r"^aws: refreshed \d+ object\(s\) in ([0-9.]+)s$", err, re.M)
            refreshes.append(float(m.group(1)) if m else None)
            print(f"  no-change plan run {i + 1}: {dt:.2f} s", flush=True)
    finally:
        server.stop()
        if opts.keep:
            print(f"\nkept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    describes = (plan_reported or {}).get("DescribeInstances", 0)
    allowed = math.ceil(opts.nodes / 1000)
    print()
    print(f"| command | N | runs | median wall (s) | min-max (s) | API calls (server count) | API calls (kiln --verbose) |")
    print(f"|---|---:|---:|---:|---:|---|---|")
    print(f"| apply | {opts.nodes:,} | {len(applies)} | {statistics.median(applies):.2f} | "
          f"{min(applies):.2f}-{max(applies):.2f} | {fmt_calls(apply_calls)} | |")
    print(f"| noop-plan | {opts.nodes:,} | {len(plans)} | {statistics.median(plans):.2f} | "
          f"{min(plans):.2f}-{max(plans):.2f} | {fmt_calls(plan_calls)} | "
          f"{fmt_calls(plan_reported) if plan_reported is not None else 'not reported'} |")
    known = [r for r in refreshes if r is not None]
    if known:
        print(f"\nof the no-change plan: refresh (the DescribeInstances of every instance, as kiln --verbose times it) "
              f"median {statistics.median(known):.2f} s")
    print()
    if plan_reported is None:
        ok = False
        print("CHECK FAILED: kiln plan --verbose printed no `aws: N API call(s)` line")
    elif describes > allowed:
        ok = False
        print(f"CHECK FAILED: the no-change plan made {describes} DescribeInstances calls for {opts.nodes} instances "
              f"(at most {allowed}: 1 per 1,000)")
    else:
        print(f"check: the no-change plan made {describes} DescribeInstances call(s) for {opts.nodes:,} instances "
              f"(at most {allowed}: 1 per 1,000): ok")
    if plan_reported is not None and plan_reported != plan_calls:
        print(f"note: kiln reported {fmt_calls(plan_reported)}, the server received {fmt_calls(plan_calls)} "
              f"(retries count once in kiln's figure)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
