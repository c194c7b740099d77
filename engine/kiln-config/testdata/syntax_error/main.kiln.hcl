variable "ok" {}

resource "record" "a" {
  input = "x"
  size  = = 2
}
