# The configuration file JupyterHub loads when hubkeeper runs it. It only calls the renderer:
# hub.yaml (path in HUBKEEPER_CONFIG) is the single source of truth.
from hubkeeper.hub.launch import config_for_this_process

c = get_config()  # type: ignore[name-defined]  # noqa: F821
c.merge(config_for_this_process())
