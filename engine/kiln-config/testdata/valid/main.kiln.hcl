kiln {
  required_version = ">= 0.1"

  backend "local" {
    path = ".kiln/state.json"
  }
}

variable "name" {
  type        = string
  default     = "web"
  description = "the name"
}

locals {
  full = "${var.name}-app"
}

resource "record" "a" {
  input = local.full

  tags {
    env = "prod"
  }
}

data "record" "lookup" {
  input = record.a.id
}

module "net" {
  source = "./modules/net"
  cidr   = "10.0.0.0/16"
}

output "id" {
  value       = record.a.id
  description = "the id"
  sensitive   = true
}
