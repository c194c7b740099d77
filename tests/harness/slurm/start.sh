#!/usr/bin/env bash
# A single-node Slurm cluster for kiln's `slurm` provider tests: munged, slurmctld and slurmd on
# this machine, no systemd, accounting off (finished jobs are read from the job completion file
# with `sacct -c`). Run as root. Idempotent: daemons that already run are left alone.
#
# Env (all optional):
#   SLURM_DIR         config, state, spool, logs and pid files           (/tmp/kiln-slurm)
#   SLURMCTLD_PORT    slurmctld's port                                    (6817)
#   SLURMD_PORT       slurmd's port                                       (6818)
#   SLURM_GPUS        pretend GPUs of the node: GRES gpu:kilngpu:N         (2)
#   KILN_SLURM_HOLDER a process ID recorded as a user of this cluster: `stop.sh --release PID`
#                     stops the cluster only once no recorded user is alive
#
# Writes SLURM_DIR/slurm.conf (partition `debug` with this machine as its only node, 127.0.0.1,
# at least 8 CPU slots, and N pretend GPUs backed by /dev/null-like device files)
# and links /etc/slurm/slurm.conf to it, so that sbatch, squeue, srun inside jobs and logins over
# ssh all find it (a real /etc/slurm/slurm.conf that is not such a link is never replaced).
# Stop with stop.sh (same SLURM_DIR).
set -euo pipefail

SLURM_DIR=${SLURM_DIR:-/tmp/kiln-slurm}
CTLD_PORT=${SLURMCTLD_PORT:-6817}
SLURMD_PORT=${SLURMD_PORT:-6818}

die() { echo "slurm harness: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it starts munged, slurmctld and slurmd)"

install_slurm() {
  export DEBIAN_FRONTEND=noninteractive
  command -v apt-get >/dev/null || die "slurmctld/munged are missing and apt-get is not available: install slurm-wlm and munge"
  if ! apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null 2>&1; then
    apt-get update >/dev/null || die "apt-get update failed"
    apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null || die "cannot install slurm-wlm and munge"
  fi
}
if [ ! -x /usr/sbin/slurmctld ] || [ ! -x /usr/sbin/slurmd ] || [ ! -x /usr/sbin/munged ]; then install_slurm; fi

mkdir -p "$SLURM_DIR"/{state,spool,log,run,munge,holders}
chmod 0755 "$SLURM_DIR"
# One start or stop at a time (tests of several processes share the cluster).
exec 9>"$SLURM_DIR/.lock"
flock 9
[ -n "${KILN_SLURM_HOLDER:-}" ] && : >"$SLURM_DIR/holders/$KILN_SLURM_HOLDER"

# A pid file naming a running process (an unreaped zombie still answers kill -0: not that).
alive() { [ -f "$1" ] && [ -r "/proc/$(cat "$1")/stat" ] && ! grep -qE '^[0-9]+ \(.*\) [ZX] ' "/proc/$(cat "$1")/stat" 2>/dev/null; }

# --- munge: one key for the machine; munged runs as the munge user, its socket directory must be
# mode 0755 and is linked where Slurm and munge clients look by default.
[ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null ||
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
chown munge:munge "$SLURM_DIR/munge"
chmod 0755 "$SLURM_DIR/munge"
MSOCK="$SLURM_DIR/munge/munge.socket.2"
if ! alive "$SLURM_DIR/munge/munged.pid"; then
  runuser -u munge -- /usr/sbin/munged --socket="$MSOCK" --pid-file="$SLURM_DIR/munge/munged.pid" \
    --log-file="$SLURM_DIR/munge/munged.log" --seed-file="$SLURM_DIR/munge/munged.seed" 9>&- ||
    die "munged did not start: $(tail -n 5 "$SLURM_DIR/munge/munged.log" 2>/dev/null)"
fi
mkdir -p /run/munge
chown munge:munge /run/munge
chmod 0755 /run/munge
ln -sfn "$MSOCK" /run/munge/munge.socket.2

# --- slurm.conf
NODE=$(hostname -s)
# More CPU slots than cores (SlurmdParameters=config_overrides), so that the tests' small jobs run
# side by side, and two pretend GPUs (a GRES without device files) so GPU requests can be tested.
CPUS=$(nproc)
[ "$CPUS" -ge 8 ] || CPUS=8
GPUS=${SLURM_GPUS:-2}
MEM=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 - 1024 ))
[ "$MEM" -ge 1024 ] || MEM=1024
CONF="$SLURM_DIR/slurm.conf"
cat >"$CONF.new" <<CONF
ClusterName=kiln
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
ReturnToService=2
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
SlurmctldPidFile=$SLURM_DIR/run/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/run/slurmd.pid
SlurmctldLogFile=$SLURM_DIR/log/slurmctld.log
SlurmdLogFile=$SLURM_DIR/log/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, every job takes the node's whole memory and jobs run one at a time.
DefMemPerCPU=256
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$SLURM_DIR/log/jobcomp.txt
MinJobAge=300
InactiveLimit=0
KillWait=5
Waittime=0
SchedulerParameters=sched_interval=2
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM Gres=gpu:kilngpu:$GPUS State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
mkdir -p "$SLURM_DIR/dev"
for i in $(seq 0 $((GPUS - 1))); do [ -c "$SLURM_DIR/dev/gpu$i" ] || { rm -f "$SLURM_DIR/dev/gpu$i"; mknod -m 0666 "$SLURM_DIR/dev/gpu$i" c 1 3; }; done
echo "NodeName=$NODE Name=gpu Type=kilngpu File=$SLURM_DIR/dev/gpu[0-$((GPUS - 1))]" >"$SLURM_DIR/gres.conf.new"
mv "$SLURM_DIR/gres.conf.new" "$SLURM_DIR/gres.conf"
mv "$CONF.new" "$CONF"
mkdir -p /etc/slurm
if [ -e /etc/slurm/slurm.conf ] && [ ! -L /etc/slurm/slurm.conf ]; then
  die "/etc/slurm/slurm.conf is a real Slurm configuration; this harness will not replace it (stop that Slurm, or move the file)"
fi
ln -sfn "$CONF" /etc/slurm/slurm.conf
export SLURM_CONF="$CONF"

# --- daemons (both daemonize and write their pid files; none may keep the lock open)
alive "$SLURM_DIR/run/slurmctld.pid" || /usr/sbin/slurmctld -f "$CONF" 9>&- ||
  die "slurmctld did not start: $(tail -n 5 "$SLURM_DIR/log/slurmctld.log" 2>/dev/null)"
alive "$SLURM_DIR/run/slurmd.pid" || /usr/sbin/slurmd -f "$CONF" 9>&- ||
  die "slurmd did not start: $(tail -n 5 "$SLURM_DIR/log/slurmd.log" 2>/dev/null)"

st=""
for _ in $(seq 1 150); do
  st=$(sinfo -h -N -o %t 2>/dev/null | head -n1 || true)
  case "$st" in
    idle*|mix*|alloc*) echo "slurm up: node $NODE ($CPUS CPUs, ${MEM} MB) state $st, partition debug, SLURM_CONF=$CONF"; exit 0 ;;
    drain*|down*) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
  esac
  sleep 0.2
done
echo "slurm harness: the node did not become idle (state '$st'); last log lines:" >&2
tail -n 5 "$SLURM_DIR/log/slurmctld.log" "$SLURM_DIR/log/slurmd.log" >&2 2>/dev/null || true
exit 1
