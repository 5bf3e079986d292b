"""armscan.datasets."""
