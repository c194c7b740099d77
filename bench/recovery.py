#!/usr/bin/env python3
"""kiln benchmark: recovery of a training job by `kiln watch` (issue 15), per provider the test
harnesses drive: local, aws (moto) and onprem (real sshd).

    cargo build --release -p kiln --locked                # aws and onprem need the default features
    python3 bench/recovery.py                             # local: K=5 kills at the default interval (5s)
    python3 bench/recovery.py --runs 5 --interval 1s --kiln target/release/kiln
    python3 bench/recovery.py --provider aws --runs 5 --interval 5s             # spot notices
    python3 bench/recovery.py --provider aws --aws-event reclaim --interval 5s  # reclaims, no notice
    python3 bench/recovery.py --provider onprem --runs 5 --interval 5s          # a host's sshd stopped

Each run applies a fresh configuration with a `recovery` block, starts `kiln watch --interval I`,
waits until the job runs, waits a time drawn uniformly from the interval (aws, onprem: after two
rounds of the watch; so the failure lands anywhere in the watch's poll cycle), makes the failure, and measures from the moment it is
observable (t0, taken just before the harness call that makes it):

  detected   when kiln recorded the failure (the `detected` event's `at` in state, from
             `kiln jobs events ADDR --json`)
  relaunched when the new job was created (the `relaunched` event's `at`)

and, per provider:

  local    SIGKILL to every process group of the job (a crash; the local provider reports
           `host_failure`). Also: resumed (the new job's rank 0 printed that it resumed from a
           checkpoint) and lost steps (the last step the old job printed minus the checkpoint
           it resumed from: at most one checkpoint interval).
  aws      moto (tests/harness/moto/kiln_moto.py, from the venv the tests use) with a bucket, a
           2-node spot cluster and a job, each instance's user data (the kiln agent) run as a
           local process pointed at the harness's metadata service, as the aws provider's tests
           do. `--aws-event notice` (default): the harness's spot-interrupt `notice` for node 1,
           after which its metadata service serves `spot/instance-action`; the agent (polling
           it every KILN_NOTICE_INTERVAL s) signals the job, which writes a last checkpoint and
           exits, and reports through the bucket. Also: agent_saw (node 1's agent wrote a status
           naming the notice, read from its local status.json, uploaded right after), agent_lost
           (its final `lost` status), notice (kiln's `notice` event, where this kiln records one)
           and kiln_latency (the `detected` event's own `latency_ms`, from the lost job's
           `finished_at`: when the agent saw the notice, in whole seconds of its clock).
           `--aws-event reclaim`: node 1's agent killed and its instance terminated as spot
           reclaims it (state reason Server.SpotInstanceTermination, the notice with it), no
           agent relay: kiln sees it in EC2's answer. The agents run with the agent's defaults
           (KILN_AGENT_INTERVAL 10 s, KILN_NOTICE_INTERVAL 1 s) unless --agent-interval and
           --notice-interval say otherwise.
  onprem   tests/harness/sshd/start.sh: three sshd hosts on loopback (a fresh SSH_DIR, free
           ports), the examples/onprem-fleet configuration over them with a third, free host,
           its job printing `ready` and sleeping. host1's sshd is stopped (stop.sh host1: the
           listener and its connections) and node 0's process group SIGKILLed (the hosts share
           this machine's process table), as the onprem watch e2e test does; kiln moves the
           node to host3. Also: ready (the new job's node 0 log, read with `kiln logs`, says
           `ready`). Needs root (start.sh).

It prints the median, min and max of each over K runs, as a table and one JSON line. Detection
targets (issue 15): under 2 s where the provider offers an event (aws's spot notice), under the
poll interval otherwise. Standard library only; Linux. The binary is copied first, so that a
concurrent `cargo build` cannot replace it mid-run.
"""
import argparse
import base64
import gzip
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVERY = 10


def kiln(binary, cwd, *args, check=True, env=None):
    env = dict(env or os.environ, KILN_QUIET="1", NO_COLOR="1")
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


def values(binary, cwd, address, env=None):
    show = json.loads(kiln(binary, cwd, "show", "--json", env=env))
    for r in show.get("resources", []):
        if r["address"] == address:
            return r["values"]
    return None


def events(binary, cwd, address, env=None):
    return json.loads(kiln(binary, cwd, "jobs", "events", address, "--json", env=env))


def relaunched(binary, cwd, address, env=None):
    """The job's events once they include `relaunched`, else None."""
    e = events(binary, cwd, address, env)
    return e if any(x["kind"] == "relaunched" for x in e) else None


def at(event):
    return datetime.fromisoformat(event["at"].replace("Z", "+00:00")).timestamp()


def first(evs, kind):
    return next((x for x in evs if x["kind"] == kind), None)


def start_watch(binary, cwd, interval, env=None, extra=()):
    return subprocess.Popen(
        [binary, "watch", "--interval", interval, *extra],
        cwd=cwd,
        env=dict(env or os.environ, NO_COLOR="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_watch(watch):
    if watch is None:
        return
    watch.send_signal(signal.SIGINT)
    try:
        watch.wait(timeout=60)
    except subprocess.TimeoutExpired:
        watch.kill()


def process_tree(root):
    """`root` and its descendants, from one pass over /proc."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            parent[int(d)] = int(stat.rsplit(")", 1)[1].split()[1])
    keep = {root}
    added = True
    while added:
        added = False
        for p, pp in parent.items():
            if p not in keep and pp in keep:
                keep.add(p)
                added = True
    return keep


def kill_tree(pid):
    """SIGKILL to `pid` and every process it started (found before any is killed)."""
    for p in process_tree(pid):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --------------------------------------------------------------------------------------------
# local


def local_run(binary, interval, _args):
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
        watch = start_watch(binary, work, interval)
        ckpt = os.path.join(work, ".kiln/buckets/checkpoints/run-1")
        # A few checkpoints, then a kill at a point of the watch's poll interval and of the
        # checkpoint interval drawn afresh each run (uniformly over the poll interval).
        wait_for("checkpoints", lambda: os.path.exists(os.path.join(ckpt, f"ckpt-{3 * EVERY:06d}.json")))
        time.sleep(random.uniform(0.0, seconds(interval)))
        old = values(binary, work, "job.train")
        log_path = os.path.join(work, ".kiln/jobs", old["job_id"], "node-0.log")
        t0 = time.time()
        for g in old["pids"]:
            try:
                os.killpg(int(g), signal.SIGKILL)
            except ProcessLookupError:
                pass
        before = last_step(open(log_path).read())
        seen = wait_for("the relaunched event", lambda: relaunched(binary, work, "job.train"))
        new = values(binary, work, "job.train")
        new_log = os.path.join(work, ".kiln/jobs", new["job_id"], "node-0.log")

        def resumed():
            try:
                m = re.search(r"rank 0: resuming from checkpoint at step (\d+)", open(new_log).read())
            except FileNotFoundError:
                return None
            return (time.time(), int(m.group(1))) if m else None

        t_resumed, from_step = wait_for("the new job to resume", resumed, every=0.01)
        return {
            "detected_s": at(first(seen, "detected")) - t0,
            "relaunched_s": at(first(seen, "relaunched")) - t0,
            "resumed_s": t_resumed - t0,
            "lost_steps": before - from_step,
        }
    finally:
        stop_watch(watch)
        kiln(binary, work, "destroy", "--auto-approve", check=False)
        shutil.rmtree(work, ignore_errors=True)


def last_step(log):
    steps = re.findall(r"^rank 0 step (\d+) ", log, re.M)
    return int(steps[-1]) if steps else 0


# --------------------------------------------------------------------------------------------
# aws (moto)

AWS_CONFIG = """variable "endpoint" {
  type = string
}

provider "aws" {
  region   = "us-east-1"
  endpoint = var.endpoint
}

resource "bucket" "ckpt" {
  provider      = aws
  force_destroy = true
}

resource "cluster" "train" {
  provider      = aws
  instance_type = "g5.xlarge"
  nodes         = 2
  spot          = true
}

resource "job" "train" {
  provider = aws
  cluster  = cluster.train

  # A step a second; on the preempt signal (SIGTERM) a last checkpoint, then out.
  run = <<-EOT
    trap 'echo "saving at step $i"; echo "$i" >"$KILN_CHECKPOINT_DIR/last"; exit 0' TERM
    i=0
    echo started
    while :; do i=$((i + 1)); sleep 1; done
  EOT

  checkpoint {
    bucket = bucket.ckpt
  }

  recovery {
    max_restarts = 3
  }
}
"""


class Moto:
    """The test harness's AWS server on a free loopback port, from the tests' venv; it exits
    when this process does."""

    def __init__(self):
        venv = os.environ.get("KILN_MOTO_VENV") or os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "moto-venv")
        python = os.path.join(venv, "bin", "python")
        if not os.path.exists(python):
            sys.exit(f"no moto venv at {venv}: run an aws test once (it creates it), or see tests/harness/moto/README.md")
        self.dir = tempfile.mkdtemp(prefix="kiln-bench-moto-")
        port_file = os.path.join(self.dir, "port")
        self.proc = subprocess.Popen(
            [python, os.path.join(ROOT, "tests/harness/moto/kiln_moto.py"), "--port", "0", "--port-file", port_file],
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.dir, "server.log"), "w"),
        )
        wait_for("the moto server", lambda: os.path.exists(port_file), bound=60, every=0.1)
        self.endpoint = f"http://127.0.0.1:{open(port_file).read().strip()}"

    def post(self, path, body=None):
        data = json.dumps(body or {}).encode()
        req = urllib.request.Request(self.endpoint + path, data=data, headers={"Content-Type": "application/json"}, method="POST")
        return urllib.request.urlopen(req, timeout=30).read().decode()

    def ec2(self, **params):
        """An EC2 query-API call (moto does not check signatures; the header names the service)."""
        body = urllib.parse.urlencode(dict(params, Version="2016-11-15")).encode()
        auth = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0"
        req = urllib.request.Request(self.endpoint + "/", data=body, headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": auth})
        return urllib.request.urlopen(req, timeout=30).read().decode()

    def user_data(self, instance_id):
        xml = self.ec2(Action="DescribeInstanceAttribute", InstanceId=instance_id, Attribute="userData")
        # gzip-compressed, as cloud-init unpacks it.
        return gzip.decompress(base64.b64decode(re.search(r"<userData><value>(.*?)</value>", xml, re.S).group(1))).decode()

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)



def aws_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_EC2_METADATA_DISABLED="true")
    return env


def boot_agent(moto, instance_id, agents, args):
    """Runs the instance's user data as the instance would at boot (the kiln agent, pointed at
    the harness's metadata service for this instance); the agent's pid."""
    script = moto.user_data(instance_id)
    assert "kiln agent" in script, script
    d = os.path.join(agents, instance_id)
    env = dict(os.environ, KILN_IMDS=f"{moto.endpoint}/_testbed/imds/us-east-1/{instance_id}", KILN_AGENT_DIR=d)
    if args.agent_interval:
        env["KILN_AGENT_INTERVAL"] = str(args.agent_interval)
    if args.notice_interval:
        env["KILN_NOTICE_INTERVAL"] = str(args.notice_interval)
    subprocess.run(["sh", "-c", script], env=env, check=True)
    pid_file = os.path.join(d, "agent.pid")
    wait_for("the agent's pid", lambda: os.path.exists(pid_file) and open(pid_file).read().strip(), bound=10)
    return int(open(pid_file).read())


def job_file(agents, instance_id, job_id, name):
    """A file of the job's directory under the agent's (named after the job's URI)."""
    d = os.path.join(agents, instance_id, "jobs")
    found = [x for x in (os.listdir(d) if os.path.isdir(d) else []) if x.endswith("_" + job_id)]
    return os.path.join(d, found[0], name) if found else os.path.join(d, job_id, name)


def read(path):
    try:
        return open(path).read()
    except OSError:
        return ""


def aws_run(binary, interval, args):
    moto = args.moto
    work = tempfile.mkdtemp(prefix="kiln-recovery-aws-")
    agents = os.path.join(work, "agents")
    open(os.path.join(work, "main.kiln.hcl"), "w").write(AWS_CONFIG)
    env = aws_env()
    var = ["--var", f"endpoint={moto.endpoint}"]
    watch, pids = None, []
    try:
        kiln(binary, work, "apply", "--auto-approve", *var, env=env)
        ids = values(binary, work, "cluster.train", env)["instance_ids"]
        job_id = values(binary, work, "job.train", env)["job_id"]
        pids = [boot_agent(moto, i, agents, args) for i in ids]
        wait_for("both nodes to run", lambda: all("started" in read(job_file(agents, i, job_id, "node.log")) for i in ids), bound=180, every=0.2)
        watch = start_watch(binary, work, interval, env, var)
        # Two rounds of the watch on the running job, then a failure at a point of its poll
        # interval drawn afresh each run.
        time.sleep(2 * seconds(interval) + random.uniform(0.0, seconds(interval)))
        status = job_file(agents, ids[1], job_id, "status.json")
        t0 = time.time()
        if args.aws_event == "notice":
            moto.post("/_testbed/spot-interrupt", {"instance_id": ids[1], "action": "notice"})
        else:
            kill_tree(pids[1])  # the instance goes with its agent
            moto.post("/_testbed/spot-interrupt", {"instance_id": ids[1], "action": "terminate"})
        saw = lost = None
        seen, next_read = None, 0.0
        while seen is None:
            if time.time() - t0 > 180:
                sys.exit("timed out waiting for the relaunched event")
            s = read(status)
            if saw is None and '"notice"' in s:
                saw = time.time()
            if lost is None and '"state":"lost"' in s:
                lost = time.time()
            if time.time() >= next_read:
                seen = relaunched(binary, work, "job.train", env)
                next_read = time.time() + 0.25
            time.sleep(0.02)
        detected, notice = first(seen, "detected"), first(seen, "notice")
        r = {
            "detected_s": at(detected) - t0,
            "relaunched_s": at(first(seen, "relaunched")) - t0,
        }
        if detected.get("latency_ms") is not None:
            r["kiln_latency_s"] = detected["latency_ms"] / 1000.0
        if args.aws_event == "notice":
            r["agent_saw_s"] = saw - t0 if saw else None
            r["agent_lost_s"] = lost - t0 if lost else None
            if notice is not None:
                r["notice_s"] = at(notice) - t0
        new = values(binary, work, "cluster.train", env)["instance_ids"]
        r["replaced_nodes"] = sum(1 for a, b in zip(ids, new) if a != b)
        return r
    finally:
        stop_watch(watch)
        kiln(binary, work, "destroy", "--auto-approve", *var, check=False, env=env)
        for p in pids:
            kill_tree(p)
        moto.post("/moto-api/reset")
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# onprem (real sshd)


class Sshd:
    """tests/harness/sshd/start.sh: HOSTS sshd hosts in a fresh directory on free ports."""

    HOSTS = 3

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="kiln-bench-sshd-")
        self.env = dict(os.environ, SSH_DIR=self.dir, SSH_HOSTS=str(self.HOSTS), SSH_BASE_PORT=str(self.free_base()))
        self.start()
        self.hosts = [line.split("\t") for line in open(os.path.join(self.dir, "hosts.tsv")).read().splitlines()]
        self.n = 0

    def free_base(self):
        for base in range(31000 + os.getpid() % 1000 * 10 % 20000, 60000, 10):
            try:
                for i in range(1, self.HOSTS + 1):
                    with socket.socket() as s:
                        s.bind((f"127.0.1.{i}", base + i))
                return base
            except OSError:
                continue
        sys.exit("no free ports for the sshd hosts")

    def script(self, name, *args):
        r = subprocess.run(["bash", os.path.join(ROOT, "tests/harness/sshd", name), *args], env=self.env, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"tests/harness/sshd/{name} {' '.join(args)} failed:\n{r.stdout}{r.stderr}")

    def start(self):
        """Starts every host not running (idempotent: a stopped host comes back)."""
        self.script("start.sh")

    def stop(self, host):
        self.script("stop.sh", host)

    def close(self):
        self.script("stop.sh", "--purge")

    def vars(self):
        """hosts.auto.kilnvars for examples/onprem-fleet over every host, with a fresh root."""
        self.n += 1
        items = ", ".join(
            f'{{ name = "{h[0]}", address = "{h[1]}", port = {h[2]}, host_key = "{h[4]} {h[5]}" }}' for h in self.hosts
        )
        return (
            f'user          = "trainer"\nidentity_file = "{self.dir}/client_ed25519"\n'
            f'root          = "{self.dir}/scratch/root-{self.n}"\nhosts         = [{items}]\n'
        )


def onprem_project(work, sshd):
    shutil.copytree(os.path.join(ROOT, "examples/onprem-fleet"), work, dirs_exist_ok=True)
    open(os.path.join(work, "hosts.auto.kilnvars"), "w").write(sshd.vars())
    path = os.path.join(work, "main.kiln.hcl")
    text = open(path).read()
    edits = [
        # A third host in the fleet, free for a lost node to move to.
        (
            "    host_key = var.hosts[1].host_key\n  }\n",
            "    host_key = var.hosts[1].host_key\n  }\n\n  host {\n    name     = var.hosts[2].name\n"
            "    address  = var.hosts[2].address\n    port     = var.hosts[2].port\n    host_key = var.hosts[2].host_key\n  }\n",
        ),
        ("  cluster  = cluster.pair\n", "  cluster  = cluster.pair\n\n  recovery {\n    max_restarts = 2\n  }\n"),
        ("master $KILN_MASTER_ADDR:$KILN_MASTER_PORT\"\n", "master $KILN_MASTER_ADDR:$KILN_MASTER_PORT\"\n    echo ready\n    sleep 100000\n"),
    ]
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    open(path, "w").write(text)


def onprem_run(binary, interval, args):
    sshd = args.sshd
    work = tempfile.mkdtemp(prefix="kiln-recovery-onprem-")
    onprem_project(work, sshd)
    watch = None

    def ready(node):
        r = subprocess.run([binary, "logs", "job.hello", "--node", str(node)], cwd=work, capture_output=True, text=True,
                           env=dict(os.environ, KILN_QUIET="1", NO_COLOR="1"), timeout=60)
        return "ready" in r.stdout

    try:
        kiln(binary, work, "apply", "--auto-approve")
        old = values(binary, work, "job.hello")
        wait_for("both nodes to run", lambda: ready(0) and ready(1), every=0.2)
        watch = start_watch(binary, work, interval)
        time.sleep(2 * seconds(interval) + random.uniform(0.0, seconds(interval)))
        pgid = int(old["pids"][0])
        t0 = time.time()
        sshd.stop("host1")  # its sshd and the connections it serves
        stopped = time.time()
        try:
            os.killpg(pgid, signal.SIGKILL)  # node 0's processes go with the host
        except ProcessLookupError:
            pass
        seen = wait_for("the relaunched event", lambda: relaunched(binary, work, "job.hello"), every=0.25)
        t_ready = wait_for("the new job's node 0 to run", lambda: ready(0) and time.time(), every=0.1)
        new = values(binary, work, "job.hello")
        assert "127.0.1.1" not in new["node_ips"], new["node_ips"]
        return {
            "stop_call_s": stopped - t0,
            "detected_s": at(first(seen, "detected")) - t0,
            "relaunched_s": at(first(seen, "relaunched")) - t0,
            "ready_s": t_ready - t0,
        }
    finally:
        stop_watch(watch)
        sshd.start()  # host1 back, so that destroy reaches every host
        kiln(binary, work, "destroy", "--auto-approve", check=False)
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------------------------

MEASURES = {
    "local": ["detected_s", "relaunched_s", "resumed_s", "lost_steps"],
    "aws": ["agent_saw_s", "agent_lost_s", "notice_s", "detected_s", "kiln_latency_s", "relaunched_s", "replaced_nodes"],
    "onprem": ["stop_call_s", "detected_s", "relaunched_s", "ready_s"],
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln", default=os.path.join(ROOT, "target/release/kiln"))
    ap.add_argument("--provider", choices=sorted(MEASURES), default="local")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--interval", default="5s")
    ap.add_argument("--aws-event", choices=["notice", "reclaim"], default="notice")
    ap.add_argument("--agent-interval", type=int, help="the agents' KILN_AGENT_INTERVAL (default: the agent's, 10)")
    ap.add_argument("--notice-interval", type=int, help="the agents' KILN_NOTICE_INTERVAL (default: the agent's, 1)")
    a = ap.parse_args()
    binary = shutil.copy(a.kiln, os.path.join(tempfile.mkdtemp(prefix="kiln-bin-"), "kiln"))
    run = {"local": local_run, "aws": aws_run, "onprem": onprem_run}[a.provider]
    a.moto = Moto() if a.provider == "aws" else None
    a.sshd = Sshd() if a.provider == "onprem" else None
    try:
        runs = [run(binary, a.interval, a) for _ in range(a.runs)]
    finally:
        if a.moto:
            a.moto.close()
        if a.sshd:
            a.sshd.close()
    what = {"local": "kills", "aws": f"spot {a.aws_event}s", "onprem": "hosts stopped"}[a.provider]
    print(f"{a.provider}: kiln watch --interval {a.interval}, {a.runs} {what}")
    print(f"{'measure':<16}{'median':>10}{'min':>10}{'max':>10}")
    summary = {"provider": a.provider, "interval": a.interval, "runs": a.runs}
    if a.provider == "aws":
        summary.update(event=a.aws_event, agent_interval=a.agent_interval or 10, notice_interval=a.notice_interval or 1)
    if a.provider == "local":
        summary["checkpoint_every_steps"] = EVERY
    for key in MEASURES[a.provider]:
        xs = [r[key] for r in runs if r.get(key) is not None]
        if not xs:
            continue
        summary[key] = {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}
        print(f"{key:<16}{statistics.median(xs):>10.2f}{min(xs):>10.2f}{max(xs):>10.2f}")
    summary["runs_raw"] = runs
    print(json.dumps(summary))
    if a.provider == "local" and max(r["lost_steps"] for r in runs) > EVERY:
        sys.exit("a kill lost more than one checkpoint interval of work")


if __name__ == "__main__":
    main()
