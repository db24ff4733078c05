# hubkeeper's own settings of every single-user server: this folder is first on the server's
# JUPYTER_CONFIG_PATH (hub/spawner_steps.environment_jupyter_paths), so it loads after the
# environment's and the system's config files. Run by the server's python (an environment's,
# or an image's), it imports nothing of hubkeeper.
import json
import os

c = get_config()  # type: ignore[name-defined]  # noqa: F821

# jupyter-resource-usage: the status bar shows memory (and CPU) against MEM_LIMIT/CPU_LIMIT,
# which the spawner sets from limits: (bytes, cores).
c.ResourceUseDisplay.track_cpu_percent = True

# Then environments.<name>.server_config, the operator's own files, in order: they have the
# last word. `check` made sure they compile and that only their owner can change them.
for _path in json.loads(os.environ.get("HUBKEEPER_SERVER_CONFIG") or "[]"):
    with open(_path, encoding="utf-8") as _file:
        _code = compile(_file.read(), _path, "exec", dont_inherit=True)
    exec(_code, {"c": c, "get_config": get_config, "__file__": _path})  # noqa: F821, S102
