"""`bakong bench`: the click command (command.py) and the load client it runs (run.py)."""
