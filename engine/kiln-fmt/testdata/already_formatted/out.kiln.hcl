# Training stack for the 7B model.

terraform {
  required_version = ">= 1.6"
}

variable "gpus" {
  type        = number
  default     = 8
  description = "GPUs per node."

  validation {
    condition     = var.gpus > 0 && var.gpus <= 8
    error_message = "Between 1 and 8 GPUs per node."
  }
}

locals {
  run_name = "llm-7b-${var.gpus}g"
  tags = {
    team    = "research"
    project = "llm"
  }
  stages = [for s in var.stages : s if s.enabled]
}

resource "kiln_gpu_pool" "train" {
  name      = local.run_name
  min_nodes = 0
  max_nodes = 16 # hard quota

  autoscaling {
    idle_minutes = 30
  }

  tags = merge(local.tags, {
    pool = "train"
  })
}

resource "kiln_training_job" "pretrain" {
  pool       = kiln_gpu_pool.train.id
  image      = "registry.example.com/llm:1.4"
  entrypoint = <<-EOT
    torchrun --nproc_per_node=${var.gpus} train.py
  EOT

  dynamic "stage" {
    for_each = local.stages
    content {
      name  = stage.value.name
      steps = stage.value.steps
    }
  }

  depends_on = [kiln_gpu_pool.train]
}

output "job_id" {
  value = kiln_training_job.pretrain.id
}
