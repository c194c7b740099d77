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
# Not here yet: the training `job` itself. The aws provider does not implement the `job` kind
# yet; once it does, a `job` block naming `spot_pool.workers` and `bucket.checkpoints` goes at
# the end of this file, as in examples/quickstart.

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

  tags = local.tags
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

output "pool_state" {
  value = spot_pool.workers.state
}
