"""`make bench`: the stack measured against the tools users would otherwise pick, in the same run."""
