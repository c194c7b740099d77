# Training on a Slurm cluster: a partition as the `cluster`, and a batch job of two tasks. kiln
# submits it with sbatch, follows it with squeue and sacct, reads its output file, and cancels it
# with scancel on destroy. Each task sees KILN_NODE_RANK, KILN_NUM_NODES, KILN_NODE_IPS,
# KILN_MASTER_ADDR, KILN_MASTER_PORT, KILN_NUM_GPUS_PER_NODE, KILN_JOB_ID and
# KILN_CHECKPOINT_DIR (plus KILN_TASK_RANK and KILN_NUM_TASKS), derived from Slurm's SLURM_*.
#
#   sudo tests/harness/slurm/start.sh     # a one-node Slurm on this machine, partition `debug`
#   kiln apply --auto-approve --wait      # submit the job and wait until it has finished
#   kiln logs job.hello                   # the job's output file
#   kiln ssh job.hello -- hostname        # while it runs: a command on its node (srun)
#   kiln destroy --auto-approve           # scancel (if it still runs), remove its files
#
# On a real cluster, set `partition` to one of yours (`sinfo` lists them), and to submit
# through a login node instead of this machine, give the provider a login block:
#
#   provider "slurm" {
#     login {
#       host     = "login1.example.org"
#       user     = "alice"
#       host_key = "ssh-ed25519 AAAA..."   # the login node's key, or "SHA256:..."; never accepted unseen
#     }
#   }

variable "partition" {
  type    = string
  default = "debug"
}

provider "slurm" {}

resource "cluster" "debug" {
  provider  = slurm
  partition = var.partition
}

resource "job" "hello" {
  provider   = slurm
  cluster    = cluster.debug
  tasks      = 2
  time_limit = "10:00"
  workdir    = path.module

  setup = "echo \"setting up on $(hostname -s)\""
  run   = <<-EOT
    echo "task $KILN_TASK_RANK of $KILN_NUM_TASKS on node $KILN_NODE_RANK of $KILN_NUM_NODES ($KILN_NODE_IPS), master $KILN_MASTER_ADDR:$KILN_MASTER_PORT"
    sleep 2
    echo "task $KILN_TASK_RANK done"
  EOT
}

output "nodes" {
  value = cluster.debug.node_names
}

output "job_id" {
  value = job.hello.job_id
}

output "status" {
  value = job.hello.status
}
