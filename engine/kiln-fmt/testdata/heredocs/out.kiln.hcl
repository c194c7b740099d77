resource "kiln_training_job" "script" {
  entrypoint = <<EOT
#!/usr/bin/env bash
set -euo pipefail
   python train.py --lr ${var.learning_rate}   
EOT
  setup      = <<-SETUP
      pip install -r requirements.txt
        echo "indented  ${local.x}"
      SETUP
  after      = 1
  config = jsonencode(yamldecode(<<YAML
model:
  layers: 32
YAML
  ))
  notes = [<<A
first }
A
  , "second"]
}
