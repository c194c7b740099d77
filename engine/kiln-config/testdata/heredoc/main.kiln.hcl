locals {
  script = <<-EOT
    #!/bin/sh
      echo "indented"
  
    %{ if true }
    done
    %{ endif }
  EOT

  plain = <<EOT
  keep
EOT

  stripped = "a %{ if true ~} b %{~ endif } c"
}
