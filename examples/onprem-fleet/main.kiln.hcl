# Training on machines you own: two hosts reached over SSH (the `onprem` provider), their
# inventory (a `fleet`), a `cluster` of two hosts allocated from them, and a two-node `job` run on
# both, detached, with the KILN_* environment: KILN_NODE_RANK, KILN_NUM_NODES, KILN_NODE_IPS,
# KILN_MASTER_ADDR, KILN_MASTER_PORT, KILN_NUM_GPUS_PER_NODE, KILN_JOB_ID, KILN_CHECKPOINT_DIR.
#
# Against your own hosts: each needs sshd, bash and setsid, and a user that your key logs in as.
# Host keys are checked strictly, so give each host's public key (or its "SHA256:..."
# fingerprint); read it on the host itself with `cat /etc/ssh/ssh_host_ed25519_key.pub`. Put the
# values in `hosts.auto.kilnvars` next to this file (every command reads it):
#
#   user          = "trainer"
#   identity_file = "~/.ssh/id_ed25519"
#   hosts = [
#     { name = "gpu-01", address = "10.0.0.11", port = 22, host_key = "ssh-ed25519 AAAA..." },
#     { name = "gpu-02", address = "10.0.0.12", port = 22, host_key = "ssh-ed25519 AAAA..." },
#   ]
#
# then:
#
#   kiln plan                            # the hosts' hardware, and which hosts the cluster gets
#   kiln apply --auto-approve --wait     # start the job on both hosts and wait until it ends
#   kiln logs job.hello --node 1         # what rank 1 printed
#   kiln status                          # the cluster's hosts and GPUs, and the job
#   kiln ssh cluster.pair --node 1       # a shell on the second host (or: -- nvidia-smi)
#   kiln destroy --auto-approve          # stop the job (if it runs), release the hosts
#
# To try it on this machine, `sudo SSH_DIR=/tmp/kiln-sshd tests/harness/sshd/start.sh` starts two
# sshd on 127.0.1.1 and 127.0.1.2; /tmp/kiln-sshd/hosts.tsv lists their ports and keys, and
# /tmp/kiln-sshd/client_ed25519 logs in as `trainer`.
#
# A changed host key is refused with the fingerprint the host presents. If a host stops
# answering, the next plan shows it: the job is `lost`, and the next apply moves the cluster's
# node to a free host of the fleet (an in-place update of its allocation) and starts the job
# again there.

variable "hosts" {
  type = list(object({
    name     = string
    address  = string
    port     = number
    host_key = string
  }))
  description = "The two hosts: name, address, SSH port, public host key (or its SHA256 fingerprint)"
}

variable "user" {
  type        = string
  default     = "trainer"
  description = "Login user on the hosts"
}

variable "identity_file" {
  type        = string
  default     = "~/.ssh/id_ed25519"
  description = "Private key that logs in as `user`"
}

variable "root" {
  type        = string
  default     = ".kiln"
  description = "Directory for kiln's files on the hosts, relative to the user's home"
}

provider "onprem" {
  user          = var.user
  identity_file = var.identity_file
  root          = var.root

  host {
    name     = var.hosts[0].name
    address  = var.hosts[0].address
    port     = var.hosts[0].port
    host_key = var.hosts[0].host_key
  }

  host {
    name     = var.hosts[1].name
    address  = var.hosts[1].address
    port     = var.hosts[1].port
    host_key = var.hosts[1].host_key
  }
}

# Every host's CPUs, memory, disks, OS and GPUs, read on each refresh.
resource "fleet" "all" {
  provider = onprem
}

# Two different hosts. Add `accelerators = "A100:8"` (or cpus, memory, labels) to ask for more;
# the plan fails, saying what each host has free, when the fleet cannot give it.
resource "cluster" "pair" {
  provider = onprem
  nodes    = 2
}

resource "job" "hello" {
  provider = onprem
  cluster  = cluster.pair

  run = <<-EOT
    echo "rank $KILN_NODE_RANK of $KILN_NUM_NODES on $(hostname)"
    echo "node IPs $KILN_NODE_IPS, master $KILN_MASTER_ADDR:$KILN_MASTER_PORT"
  EOT
}

output "hosts" {
  value = [for h in fleet.all.hosts : h.reachable ? "${h.name}: ${h.cpus} CPUs, ${h.memory_gb} GiB, ${h.gpu_count} GPUs" : "${h.name}: unreachable"]
}

output "node_ips" {
  value = cluster.pair.node_ips
}

output "status" {
  value = job.hello.status
}
