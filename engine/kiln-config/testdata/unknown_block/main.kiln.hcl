resorce "record" "a" {
  input = "x"
}

varible "region" {}

outputs "x" {
  value = 1
}

resource "record" "ok" {
  input = "fine"
}

region = "top-level attribute"
