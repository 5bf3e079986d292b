"""armscan.inference."""
