resource "kiln_gpu_pool" "train" {
  name = "train-a100"
  instance_type    =   "a100-80gb"
  min_nodes= 0
  max_nodes =8

  # A comment line ends the group above.
  spot = true
  preemption_grace_seconds = 120
  # and this one too
  region="us-east-1"
  labels = {
    team = "research"
  }
  zone = "a"
  accelerator_count_per_node = 8
  network {
    bandwidth_gbps = 400
  }
  disk_gb = 2000
  x = 1
}

variable "learning_rate" {
  type=number
  default    = 0.0003
  description = "Peak learning rate."
}
