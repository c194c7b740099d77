

variable "a" {
  default = 1


  type = number
}



variable "b" {

  default = 2

}

output "c" {
  value = var.a
}
