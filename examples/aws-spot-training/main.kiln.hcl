# Spot training on AWS: an S3 bucket for checkpoints and a pool of GPU spot instances (an EC2
# Fleet that keeps `capacity` instances running across several instance types and zones).
#
#   export AWS_PROFILE=...              # or any other source of AWS credentials
#   kiln plan                           # what would be created, and what it resolved to
#   kiln apply                          # the bucket and the fleet: 4 GPU spot instances, billed until destroyed
#   kiln output                         # bucket URI, fleet ID, instances
#   kiln destroy --auto-approve         # delete the fleet, its instances and the bucket
#
# Against an AWS-compatible emulator instead (such as moto, as kiln's tests do), with
# AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test:
#
#   kiln apply --var endpoint=http://127.0.0.1:5000
#
# The job runs on the pool's instances: the kiln agent that every instance kiln launches starts
# from its user data reads the job from the bucket, runs it, and writes status, heartbeats and
# logs back there (`kiln jobs`, `kiln logs job.train`). On AWS, give the pool an
# `instance_profile` whose role may read and write the bucket. KILN_CHECKPOINT_DIR is a local
# directory on every instance, as on every provider: the agent fills it from the checkpoint
# block's s3://BUCKET/PATH (KILN_CHECKPOINT_URI) before the job starts, and uploads what the job
# writes there while it runs and when it ends.

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "endpoint" {
  type        = string
  default     = null
  description = "URL of an AWS-compatible API endpoint; null means AWS itself"
}

variable "workers" {
  type        = number
  default     = 4
  description = "Instances the pool keeps running"
}

provider "aws" {
  region   = var.region
  endpoint = var.endpoint
}

locals {
  tags = {
    project = "kiln-spot-training"
  }
}

resource "bucket" "checkpoints" {
  provider    = aws
  versioning  = true
  expire_days = 30 # checkpoints older than a month go
  tags        = local.tags

  # Destroy refuses to delete a bucket holding checkpoints; set this to let it.
  force_destroy = true
}

resource "spot_pool" "workers" {
  provider = aws
  capacity = var.workers

  # One A10G GPU per instance: the pool spreads over every instance type that fits
  # (g5.xlarge, ...) in every zone that offers them, and replaces what spot takes back.
  accelerators = "A10G:1"

  # When spot capacity is short (or reclaimed), fill the gap with on-demand instances.
  on_demand_fallback = true

  # No SSH into the instances unless asked: uncomment with your own address block to open
  # port 22 from it (a world-open block such as 0.0.0.0/0 gets a plan warning).
  # ssh_cidr = "203.0.113.7/32"

  tags = local.tags
}

resource "job" "train" {
  provider = aws
  cluster  = spot_pool.workers

  # Your code comes from the image, from `setup` (git clone, pip install, aws s3 cp ...), or
  # from `workdir = "src"`: a directory next to this file that kiln uploads through the bucket
  # (less what src/.kilnignore excludes) and the instances run the scripts in.
  # This stand-in prints what torchrun would be given.
  run = <<-EOT
    echo "node $KILN_NODE_RANK of $KILN_NUM_NODES ($KILN_NUM_GPUS_PER_NODE GPU), master $KILN_MASTER_ADDR:$KILN_MASTER_PORT"
    echo "checkpoints go to $KILN_CHECKPOINT_DIR, kept in $KILN_CHECKPOINT_URI"
  EOT

  checkpoint {
    bucket = bucket.checkpoints
    path   = "run-1/"
  }
}

output "checkpoints" {
  value = bucket.checkpoints.uri
}

output "fleet_id" {
  value = spot_pool.workers.fleet_id
}

output "instance_types" {
  value = spot_pool.workers.instance_types
}

output "instance_ids" {
  value = spot_pool.workers.instance_ids
}

output "job_status" {
  value = job.train.status
}

output "pool_state" {
  value = spot_pool.workers.state
}
