resource "record" "a" {
  input = [1, 2
}
