module "no_source" {
  input = 1
}

module "missing_dir" {
  source = "./does-not-exist"
}

module "computed" {
  source = "./${var.dir}"
}

module "counted" {
  source = "./mod"
  count  = 2
}

module "ok" {
  source = "./mod"
  name   = "x"
}
