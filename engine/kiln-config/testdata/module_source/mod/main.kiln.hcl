variable "name" {
  default = "m"
}
