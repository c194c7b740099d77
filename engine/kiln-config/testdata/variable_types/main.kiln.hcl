variable "obj" {
  type = object({ a = string, b = optional(number, 1) })
}

variable "nested" {
  type = list(map(string))
}

variable "legacy" {
  type = "string"
}

variable "legacy_list" {
  type = "list"
}

variable "tuple" {
  type = tuple([string, number, bool])
}

variable "set_any" {
  type = set(any)
}

variable "untyped" {
  default = 1
}

variable "typo" {
  type = list(strng)
}

variable "top_optional" {
  type = optional(string)
}

variable "bad_default" {
  type = object({ a = optional(string, var.other) })
}

variable "two_args" {
  type = map(string, number)
}

variable "settings" {
  type        = bool
  default     = true
  description = "a flag"
  sensitive   = true
  nullable    = false

  validation {
    condition     = var.settings != null
    error_message = "must be set"
  }

  validaton {}
}
