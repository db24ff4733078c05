"""hub.yaml: the typed model and its loader."""

from hubkeeper.config.loader import LoadedSpec, default_config_path, load, parse
from hubkeeper.config.model import HubSpec

__all__ = ["HubSpec", "LoadedSpec", "default_config_path", "load", "parse"]
