locals {
  upper_names   = [for n in var.names : upper(n)]
  by_name       = { for j in var.jobs : j.name => j if j.enabled }
  grouped       = { for j in var.jobs : j.team => j.name... }
  indexed       = [for i, v in var.list : "${i}-${v}"]
  literal_tuple = [for x in [1, 2, 3] : x * 2]
  multi_line_for = {
    for k, v in var.map :
    k => v
    if v != null
  }
  nested   = [for a in var.as : [for b in a.bs : b.id]]
  gpus     = var.large ? 8 : 1
  gpu_kind = var.gpus > 4 ? "a100" : var.gpus > 1 ? "a10" : "t4"
  wrapped = (
    var.enabled
    ? "on"
    : "off"
  )
  object_or_empty = var.enabled ? {
    a = 1
  } : {}
  splat        = var.nodes[*].id
  legacy_splat = var.nodes.*.id
  spread       = max(var.values...)
}
