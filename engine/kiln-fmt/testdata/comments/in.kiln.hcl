# File header comment.   
// Another style of line comment.
/* A block comment
     spanning lines
   keeps its inner layout */

resource "kiln_dataset" "corpus" { # trailing after an opening brace
  source = "s3://corpus"  # where the data lives
  format = "parquet" // columnar
  shards = 512 /* inline block comment */
  # Standalone comment inside a block.	 
  verify_checksums = true#no space before
  compression_level_for_shards = 9      # aligned with the line above

  /* block comment on its own line */
  tags = {
    owner = "data"  # trailing in an object
    # standalone in an object
    tier = "gold"
  }
  files = [
    "a.parquet", # first
    "bb.parquet",   # second
    # standalone in a list
    "ccc.parquet",
  ] # after a closing bracket
} # after the closing brace

# Comment at the end of the file.
