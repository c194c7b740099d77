provider "kiln" {
  region = "east"
}

provider "kiln" {
  alias  = "west"
  region = "west"
}

resource "record" "default" {
  input = "a"
}

resource "record" "aliased" {
  provider = kiln.west
  input    = "b"
}

resource "record" "quoted" {
  provider = "kiln.west"
}

data "record" "d" {
  provider = kiln
}

resource "record" "bad" {
  provider = kiln.a.b
}

provider "kiln" {
  alias = var.name
}

provider "kiln" {
  alias = "west"
}
