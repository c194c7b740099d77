#!/usr/bin/env bash
# Pretend on-prem hosts for kiln's `onprem` provider tests: N real sshd processes on loopback, each
# with its own address (127.0.1.I), port, host key and directory; key-only login for one user.
# Run as root. Idempotent: a host whose sshd already runs is left alone.
#
# Env (all optional):
#   SSH_DIR        where keys, configs, logs and pid files live   (/tmp/kiln-sshd)
#   SSH_HOSTS      number of hosts                                 (2)
#   SSH_BASE_PORT  host I listens on port SSH_BASE_PORT+I          (2220)
#   SSH_ADDR_NET   host I listens on address SSH_ADDR_NET.I        (127.0.1; all of 127/8 is loopback)
#   SSH_USER       the login user, created when missing            (trainer)
#
# Writes, under SSH_DIR:
#   client_ed25519[.pub]   the client key (authorized for SSH_USER on every host)
#   known_hosts            strict known_hosts for every host
#   ssh_config             `Host host1..hostN` entries, for `ssh -F SSH_DIR/ssh_config host1`
#   hosts.tsv              one line per host: NAME ADDRESS PORT USER HOST_KEY_TYPE HOST_KEY_BASE64
#   hostI/                 sshd_config, host key, sshd.pid, sshd.log, and bin/ (first on the
#                          session PATH: tests put fake nvidia-smi / rocm-smi there)
#   scratch/               mode 1777: tests' remote files (all hosts share this machine's disk)
# Stop with stop.sh (same SSH_DIR).
set -euo pipefail

SSH_DIR=${SSH_DIR:-/tmp/kiln-sshd}
N=${SSH_HOSTS:-2}
BASE=${SSH_BASE_PORT:-2220}
NET=${SSH_ADDR_NET:-127.0.1}
USER_NAME=${SSH_USER:-trainer}

die() { echo "sshd harness: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it starts sshd and creates the user $USER_NAME)"

install_sshd() {
  export DEBIAN_FRONTEND=noninteractive
  command -v apt-get >/dev/null || die "/usr/sbin/sshd is missing and apt-get is not available: install openssh-server"
  if ! apt-get install -y --no-install-recommends openssh-server openssh-client >/dev/null 2>&1; then
    apt-get update >/dev/null || die "apt-get update failed"
    apt-get install -y --no-install-recommends openssh-server openssh-client >/dev/null || die "cannot install openssh-server"
  fi
}

[ -x /usr/sbin/sshd ] || install_sshd
command -v ssh-keygen >/dev/null || die "ssh-keygen is missing: install openssh-client"

# sshd refuses to start without its privilege-separation directory.
mkdir -p "$SSH_DIR/scratch" /run/sshd
chmod 0755 /run/sshd "$SSH_DIR"
chmod 1777 "$SSH_DIR/scratch"

# A normal login user. With `UsePAM no` a locked password ('!') makes sshd reject even key logins.
id "$USER_NAME" >/dev/null 2>&1 || useradd -m -s /bin/bash "$USER_NAME"
usermod -p '*' "$USER_NAME"

[ -f "$SSH_DIR/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C kiln-harness-client -f "$SSH_DIR/client_ed25519"
install -m 0644 "$SSH_DIR/client_ed25519.pub" "$SSH_DIR/authorized_keys"

write_sshd_config() { # DIR ADDRESS PORT NAME
  cat >"$1/sshd_config" <<CONF
Port $3
ListenAddress $2
HostKey $1/ssh_host_ed25519_key
PidFile $1/sshd.pid
AuthorizedKeysFile $SSH_DIR/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers $USER_NAME
UsePAM no
# the keys live under /tmp (mode 1777): StrictModes would reject the path
StrictModes no
AllowTcpForwarding yes
PermitUserEnvironment no
# every session starts with the host's bin/ first on PATH
SetEnv KILN_HARNESS_HOST=$4 PATH=$1/bin:/usr/local/bin:/usr/bin:/bin
MaxSessions 64
MaxStartups 64:30:128
LogLevel INFO
CONF
}

running() { [ -f "$1/sshd.pid" ] && kill -0 "$(cat "$1/sshd.pid")" 2>/dev/null; }

: >"$SSH_DIR/known_hosts.new"
: >"$SSH_DIR/ssh_config.new"
: >"$SSH_DIR/hosts.tsv.new"
for i in $(seq 1 "$N"); do
  h="host$i"; d="$SSH_DIR/$h"; addr="$NET.$i"; port=$((BASE + i))
  mkdir -p "$d/bin"
  chmod 0755 "$d" "$d/bin"
  [ -f "$d/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C "$h" -f "$d/ssh_host_ed25519_key"
  write_sshd_config "$d" "$addr" "$port" "$h"
  if running "$d"; then
    echo "$h already running ($addr:$port, pid $(cat "$d/sshd.pid"))"
  else
    /usr/sbin/sshd -t -f "$d/sshd_config" || die "$h: invalid sshd_config ($d/sshd_config)"
    # must be started by absolute path; it daemonizes and writes its PidFile
    /usr/sbin/sshd -f "$d/sshd_config" -E "$d/sshd.log" || die "$h: sshd did not start; see $d/sshd.log"
  fi
  read -r ktype kb64 _ <"$d/ssh_host_ed25519_key.pub"
  echo "[$addr]:$port,$h $ktype $kb64" >>"$SSH_DIR/known_hosts.new"
  printf 'Host %s\n  HostName %s\n  Port %s\n  User %s\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 5\n' \
    "$h" "$addr" "$port" "$USER_NAME" "$SSH_DIR/client_ed25519" "$SSH_DIR/known_hosts" >>"$SSH_DIR/ssh_config.new"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$h" "$addr" "$port" "$USER_NAME" "$ktype" "$kb64" >>"$SSH_DIR/hosts.tsv.new"
done
mv "$SSH_DIR/known_hosts.new" "$SSH_DIR/known_hosts"
mv "$SSH_DIR/ssh_config.new" "$SSH_DIR/ssh_config"
mv "$SSH_DIR/hosts.tsv.new" "$SSH_DIR/hosts.tsv"

# Wait until every host accepts a key login (sshd needs a moment after daemonizing).
for i in $(seq 1 "$N"); do
  ok=0
  for _ in $(seq 1 100); do
    if ssh -F "$SSH_DIR/ssh_config" "host$i" true 2>/dev/null; then ok=1; break; fi
    sleep 0.1
  done
  [ "$ok" = 1 ] || { ssh -F "$SSH_DIR/ssh_config" "host$i" true || true; die "host$i does not accept logins; see $SSH_DIR/host$i/sshd.log"; }
  echo "host$i up: $(ssh -F "$SSH_DIR/ssh_config" "host$i" 'echo "$KILN_HARNESS_HOST as $(id -un)"')"
done
