"""What JupyterHub imports, running inside the hub process: its config file, authenticators,
admission, spawners per backend, hooks, the checked proxy class."""
