resorce "record" "a" {}

variable "v" {
  type    = lst(string)
  defualt = 1
}

output "no_value" {
  description = "missing value"
}

resource "record" "b" {
  count    = 1
  for_each = {}
}

module "m" {}

locals {
  x = 1
  x = 2
}
