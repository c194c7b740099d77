resource "record" "a" {
  input = "first"
}

variable "v" {}
variable "v" {}

locals {
  l = 1
}

output "o" {
  value = 1
}

provider "kiln" {}
