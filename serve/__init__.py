"""armscan.serve."""
