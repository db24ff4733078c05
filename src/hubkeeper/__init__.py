"""hubkeeper: one hub.yaml describes a JupyterHub; hubkeeper makes the machine match it."""

__version__ = "0.1.0"
