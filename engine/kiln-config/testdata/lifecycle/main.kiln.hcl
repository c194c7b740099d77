resource "record" "all" {
  input = "x"

  lifecycle {
    prevent_destroy       = true
    create_before_destroy = true
    ignore_changes        = [input, "tags"]
  }
}

resource "record" "everything_ignored" {
  lifecycle {
    ignore_changes = all
  }
}

resource "record" "defaults" {}

resource "record" "bad" {
  lifecycle {
    prevent_destroy = "yes"
    prevent_destory = true
    ignore_changes  = [tags.name]
    precondition {
      condition = true
    }
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "record" "bad_ignore" {
  lifecycle {
    ignore_changes = "input"
  }
}
