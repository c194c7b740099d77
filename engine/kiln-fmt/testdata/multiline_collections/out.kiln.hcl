locals {
  hyperparameters = {
    learning_rate  = 0.0003
    batch_size     = 256
    "warmup_ratio" = 0.01
    optimizer = {
      name  = "adamw"
      betas = [0.9, 0.95]
    }
    schedule : "cosine"
  }
  regions = [
    "us-east-1",
    "eu-west-1",
    "ap-south-1"
  ]
  empty_object  = {}
  empty_list    = []
  inline_object = { name = "x", size = 2 }
  nested_lists = [
    [1, 2],
    [
      3,
      4,
    ],
  ]
  objects = [
    {
      name = "a"
      gpus = 8
    },
    {
      name = "b"
      gpus = 16
    },
  ]
  merged = merge(local.hyperparameters, {
    extra = true
  })
  call = format(
    "%s-%s",
    var.a,
    var.b,
  )
}
