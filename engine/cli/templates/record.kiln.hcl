kiln {
  backend "local" {
    path = ".kiln/state.json"
  }
}

resource "record" "hello" {
  input = "hello from kiln"
}

output "hello" {
  value = record.hello.output
}
