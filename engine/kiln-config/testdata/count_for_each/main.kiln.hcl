resource "record" "both" {
  count    = 2
  for_each = toset(["a", "b"])
  input    = "x"
}

resource "record" "counted" {
  count = 3
}

resource "record" "each" {
  for_each = { a = 1 }
}
