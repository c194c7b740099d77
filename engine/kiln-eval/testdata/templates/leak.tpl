id=${var.name}
