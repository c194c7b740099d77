resource "record" "a" {
  input = "second"
  input = "again"
}

locals {
  l = 2
}

output "o" {
  value = 2
}

provider "kiln" {}

data "record" "a" {}
