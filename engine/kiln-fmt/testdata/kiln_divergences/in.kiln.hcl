# Places where kiln fmt deliberately differs from terraform fmt.
resource "kiln_dataset" /* kept: terraform drops comments between labels */ "corpus" {
  name = "${var.name}"   # not unwrapped to var.name (that may change the type)
  path = "${ var.root }/data"   # interpolation spacing is kept
}
