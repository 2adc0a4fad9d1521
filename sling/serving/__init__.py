"""Serving a finished run's student to a person: `sling ask` (asking) and `sling chat` (chat), both over the run's own
index, adapters and report, through the answer stage's code."""
