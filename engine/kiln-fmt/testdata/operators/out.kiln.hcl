locals {
  sum          = var.a + var.b
  product      = var.a * var.b / 2 % 3
  negative     = -1
  neg_var      = -var.x
  minus_neg    = var.a - -var.b
  paren        = (var.a + 1) * 2
  compare      = var.a >= 1 && var.b <= 2 || var.c != 3
  not          = !var.enabled
  eq           = var.a == var.b
  gt_lt        = var.a > 1 && var.b < 2
  call         = max(1, 2, 3)
  index        = var.list[0]
  attr         = var.object.field
  namespaced   = provider::kiln::checksum("x")
  number       = 1.5e10
  dashed_ident = var.a-b
}
