# The configuration the CI examples plan and apply (see README.md here): a bucket for datasets,
# a one-node cluster and the policies every pull request is checked against. It runs on the
# `local` provider so the workflows (and kiln's own test of them) need no cloud account; a real
# repository puts its clouds here, and a shared state backend (see README.md).

resource "bucket" "datasets" {
  # A merge never deletes a bucket that holds data: the policy below refuses such a plan.
  force_destroy = false
}

resource "cluster" "train" {
  nodes = 1
  # accelerators = "H100:8"  # with a cloud provider, and `placement { ... }` to let kiln choose
}

# Checked on every plan: a pull request whose plan breaks one fails its check (exit code 3), and
# `kiln apply` refuses that plan.
policy "guardrails" {
  max_hourly_cost          = 50        # USD per hour after apply; an unknown price never counts as $0
  allowed_providers        = ["local"] # in a real repository, such as ["aws", "onprem"]
  protect_nonempty_buckets = true

  rule {
    condition = change.action != "delete" || change.kind != "cluster"
    message   = "${change.address}: clusters are destroyed by hand, not by a merge"
  }
}
