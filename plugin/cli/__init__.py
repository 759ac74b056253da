"""``wa-sessions``: the command line."""
