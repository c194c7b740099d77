locals {
  spaced = "${ var.a  +  var.b }"
  only_interp = "${var.name}"
  directive = "%{ if var.on }yes%{ else }no%{ endif }"
  escapes = "a \"quoted\" $${not_interp} %%{not_directive} \\ \n"
  nested = "outer ${ "inner ${ var.x }" } done"
  strip = "${~ var.a ~}"
  unicode = "naïve — 日本語"
  heredoc = <<-EOT
    ${ var.a }   keep   spacing
    %{ for x in var.xs ~}
    - ${x}
    %{ endfor ~}
  EOT
}
