resource "record" "a" {}

data "record" "d" {}

module "m" {
  source     = "./mod"
  depends_on = [record.a]
}

resource "record" "b" {
  depends_on = [record.a, module.m, data.record.d]
}

output "o" {
  value      = 1
  depends_on = [record.b]
}

resource "record" "not_a_list" {
  depends_on = record.a
}

resource "record" "quoted" {
  depends_on = ["record.a"]
}

resource "record" "indexed" {
  depends_on = [record.a[0]]
}
