resource "kiln_gpu_pool" "train" {
  name = "x"
}
resource "kiln_gpu_pool" "eval" {
}
data "kiln_image" "base" {}
provider "kiln" {
  region = "us-east-1"
}
terraform {
  required_version = ">= 1.0"
}
job "one_line" { steps = 10 }
job "empty_one_line" {}
