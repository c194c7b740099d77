locals {
  args = foo(1,
    2,
  3)
  pairs = [[1, 2],
    [3, 4]]
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Action = ["s3:GetObject"]
      Effect = "Allow"
    }]
  })
  cond = var.x ? {
    a = 1
    } : {
    b = 2
  }
}
