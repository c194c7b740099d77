resorce "record" "b" {}
