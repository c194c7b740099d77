# A first kiln configuration: runs on the built-in `record` kind, so it needs no cloud account.
# Try: kiln plan, kiln apply, then change `nodes` and plan again.

variable "nodes" {
  type    = number
  default = 2
}

variable "run_name" {
  type    = string
  default = "pretrain"
}

locals {
  tags = {
    project = "kiln-demo"
    run     = var.run_name
  }
}

resource "record" "bucket" {
  input = {
    name = "${var.run_name}-checkpoints"
    tags = local.tags
  }
}

resource "record" "node" {
  count = var.nodes
  input = {
    name       = format("%s-node-%02d", var.run_name, count.index)
    checkpoint = "${record.bucket.output.name}/node-${count.index}"
  }
}

resource "record" "job" {
  input = {
    nodes  = [for n in record.node : n.output.name]
    script = <<-EOT
      torchrun --nnodes=${var.nodes} train.py
    EOT
  }
}

output "job_id" {
  value = record.job.id
}

output "nodes" {
  value = record.job.output.nodes
}
