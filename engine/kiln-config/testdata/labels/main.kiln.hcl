resource "record" {
  input = "x"
}

variable {}

data "record" {}

module {
  source = "./m"
}

locals "named" {
  x = 1
}

resource "record" "a" "extra" {}

resource "record" "1bad" {}

output {
  value = 1
}
