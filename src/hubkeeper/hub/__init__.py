"""Turning a HubSpec into a running JupyterHub: the pure renderer, the spawner, the supervisor."""
