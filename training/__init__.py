"""armscan.training."""
