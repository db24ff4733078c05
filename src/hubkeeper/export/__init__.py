"""hub.yaml for other engines: values for the Zero to JupyterHub chart (z2jh.py)."""
