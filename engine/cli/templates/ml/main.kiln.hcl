# kiln's ML starter: a bucket for checkpoints, a 2-node cluster and a training job (train.py,
# standard library only), all on this machine through the `local` provider: no cloud account
# needed. To train elsewhere, give these blocks a `provider` (aws, onprem, slurm); their shape
# stays the same.
#
#   kiln plan                          # what kiln would create
#   kiln apply --auto-approve --wait   # create everything and train (about 10 s)
#   kiln status                        # the cluster and the job
#   kiln logs job.train                # what every node printed
#   kiln destroy --auto-approve        # stop the job, delete the bucket

kiln {
  backend "local" {
    path = ".kiln/state.json"
  }
}

resource "bucket" "checkpoints" {
  # The starter's checkpoints are disposable, so destroy may delete them. Without this line,
  # destroy refuses to delete a bucket that holds files.
  force_destroy = true
}

resource "cluster" "train" {
  nodes = 2
  # accelerators = "H100:8"  # GPUs per node; plan fails if this machine lacks them
}

resource "job" "train" {
  cluster = cluster.train
  workdir = path.module
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
