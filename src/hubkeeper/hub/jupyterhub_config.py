# The configuration file JupyterHub loads when hubkeeper runs it. It only calls the renderer:
# hub.yaml (path in HUBKEEPER_CONFIG) is the single source of truth. Then hub.extra_config's
# files, the operator's own, run with this same `c`, so they have the last word.
from hubkeeper.hub.launch import config_for_this_process, run_extra_config, this_hub
from hubkeeper.hub.warm import prestart_default

hub = this_hub()
c = get_config()  # type: ignore[name-defined]  # noqa: F821
c.merge(config_for_this_process(hub))
run_extra_config(c, get_config, hub)  # type: ignore[name-defined]  # noqa: F821
prestart_default(c)  # servers.warm: the default build's warm parent, from now
