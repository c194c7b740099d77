job "pretrain" {
  resource "kiln_training_job" "llm" {
    name = "llm-7b"
    stage "warmup" {
      steps = 2000
      scheduler {
        kind = "linear"
      }
    }
    stage "main" {
      steps = 100000
      checkpoint {
        every_steps = 1000
        storage {
          bucket = "ckpt"
          prefix = "llm-7b/"
        }
      }
    }
  }
}

lifecycle_policy {}
lifecycle_policy "empty" {
}
