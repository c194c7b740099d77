# kiln quickstart: a bucket for checkpoints, a 2-node cluster and a training job, all on this
# machine through the `local` provider, kiln's default: no cloud account needed. Moving it to
# a cloud later changes the `provider` of these blocks, not their shape.
#
#   kiln apply --auto-approve --wait   # create everything, train (about 10 s), wait for the job
#   kiln output                        # the bucket's URI, the job's status, the final loss
#   kiln logs job.train --node 1       # what node 1 printed
#   kiln status                        # the cluster and the job (--json for scripts)
#   kiln destroy --auto-approve        # stop the job, delete the bucket

resource "bucket" "checkpoints" {
  # This demo's checkpoints are disposable, so destroy may delete them. Without this line,
  # destroy refuses to delete a bucket that holds files.
  force_destroy = true
}

resource "cluster" "train" {
  nodes = 2
  # accelerators = "H100:8"  # ask for GPUs per node; plan fails if this machine lacks them
}

resource "job" "train" {
  cluster = cluster.train
  workdir = path.module
  setup   = "python3 --version"
  run     = "python3 train.py"

  env = {
    TRAIN_STEPS = "100"
  }

  checkpoint {
    bucket = bucket.checkpoints
    path   = "run-1/"
  }
}

output "checkpoints" {
  value = "${bucket.checkpoints.uri}/run-1/"
}

output "status" {
  value = job.train.status
}

output "final_loss" {
  value = try(jsondecode(file("${bucket.checkpoints.path}/run-1/result.json")).final_loss, "not finished yet")
}
