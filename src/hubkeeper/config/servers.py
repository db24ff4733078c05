"""What every user's server is started with: its environment variables and the UI it opens
(`servers:`, hub-wide and per group; `environments.<name>.env` and `.ui` use the same types).

Variables go to the server and its kernels on every backend. Precedence: hub-wide, then the
user's environment, then the user's groups (the first of their groups listed under
servers.groups wins a name two of them set). The names JupyterHub, the spawner and hubkeeper
set themselves are refused, so hub.yaml cannot break a server's login or its limits.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from hubkeeper.config.access import GroupName
from hubkeeper.config.types import Section

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# On backend slurm root runs `runuser -u <account> -- sbatch` with the server's environment,
# and glibc honours these in a program root runs (it ignores them only in setuid ones): a
# path a student can write there would run the student's code as root.
LOADER = ("glibc and the dynamic loader read it in every program, and on backend slurm root "
          "runs runuser with the server's environment")
RESERVED_PREFIXES = {
    "JUPYTERHUB_": "JupyterHub sets the JUPYTERHUB_* variables (the server's login to the hub)",
    "JPY_": "JupyterHub sets the JPY_* variables",
    "HUBKEEPER_": "hubkeeper sets the HUBKEEPER_* variables",
    "SLURM_": "Slurm and sbatch read the SLURM_* variables (backend slurm)",
    "SBATCH_": "sbatch reads the SBATCH_* variables as options (backend slurm)",
    "LD_": LOADER,
}
RESERVED_NAMES = {
    **dict.fromkeys(("MEM_LIMIT", "CPU_LIMIT", "MEM_GUARANTEE", "CPU_GUARANTEE"),
                    "the spawner sets it from limits:"),
    **dict.fromkeys(("HOME", "USER", "LOGNAME", "SHELL"),
                    "the spawner sets it from the user's account"),
    **dict.fromkeys(("PATH", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "CONDA_ROOT",
                     "CONDA_DEFAULT_ENV"),
                    "the spawner passes the hub's own value on (env_keep)"),
    **dict.fromkeys(("JUPYTER_CONFIG_PATH", "JUPYTER_PATH", "JUPYTERLAB_DIR"),
                    "hubkeeper points the server at its JupyterLab with it"),
    **dict.fromkeys(("GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES",
                     "LOCALDOMAIN", "LOCPATH", "MALLOC_TRACE", "NIS_PATH", "NLSPATH",
                     "RESOLV_HOST_CONF", "RES_OPTIONS"), LOADER),
}


def reserved_because(name: str) -> str | None:
    """Why `name` cannot be set from hub.yaml, or None when it can."""
    if name in RESERVED_NAMES:
        return RESERVED_NAMES[name]
    for prefix, why in RESERVED_PREFIXES.items():
        if name.startswith(prefix):
            return why
    return None


def _env_name(value: str) -> str:
    if not ENV_NAME.match(value):
        raise ValueError(f"{value!r} is not an environment variable name; use letters, digits "
                         "and _, not starting with a digit (e.g. NLTK_DATA)")
    why = reserved_because(value)
    if why:
        raise ValueError(f"{value!r} is reserved: {why}; choose another name")
    return value


def _env_value(value: Any) -> Any:
    if isinstance(value, (bool, int, float)) or value is None:
        shown = "" if value is None else str(value).lower() if isinstance(value, bool) else value
        raise ValueError(f"must be a string; got {value!r}: write it in quotes "
                         f"('{shown}')")
    if isinstance(value, str) and "\0" in value:
        raise ValueError("must not contain a NUL character")
    return value


EnvName = Annotated[str, AfterValidator(_env_name)]
EnvValue = Annotated[str, BeforeValidator(_env_value)]
EnvVars = dict[EnvName, EnvValue]

UI_NAMES = {"lab": "/lab", "notebook": "/tree"}
UI_PATH = re.compile(r"^/[A-Za-z0-9._~%+-]+(/[A-Za-z0-9._~%+-]+)*/?$")


def _ui(value: str) -> str:
    if value in UI_NAMES:
        return value
    if not value.startswith("/"):
        raise ValueError(f"{value!r} is not a UI; use lab, notebook, or a path in the server "
                         "starting with / (e.g. /rstudio or /voila/render/intro.ipynb)")
    segments = value.strip("/").split("/")
    if not UI_PATH.match(value) or ".." in segments or "." in segments:
        raise ValueError(f"{value!r} is not a path in the server; write it like "
                         "/voila/render/intro.ipynb (letters, digits, . _ ~ % + -, segments "
                         "separated by single /, no . or ..)")
    return value


UserInterface = Annotated[str, AfterValidator(_ui)]

ENV_HELP = ("Environment variables of every user's server and its kernels, name -> value "
            "(values are strings: quote numbers, e.g. OMP_NUM_THREADS: '1'). The names "
            "JupyterHub, the spawner and hubkeeper set are refused: JUPYTERHUB_*, JPY_*, "
            "HUBKEEPER_*, SLURM_*, SBATCH_*, MEM_LIMIT, CPU_LIMIT, MEM_GUARANTEE, "
            "CPU_GUARANTEE, HOME, USER, LOGNAME, SHELL, PATH, LANG, LC_ALL, PYTHONPATH, "
            "VIRTUAL_ENV, CONDA_ROOT, CONDA_DEFAULT_ENV, JUPYTER_CONFIG_PATH, JUPYTER_PATH, "
            "JUPYTERLAB_DIR, and what glibc reads in programs root runs (LD_*, GCONV_PATH, "
            "GLIBC_TUNABLES, LOCPATH, NLSPATH, ...; docs/environments.md).")
UI_HELP = ("What a server opens: lab (JupyterLab), notebook (the classic interface of "
           "Jupyter Notebook 7, its file tree at /tree), or a path in the server starting "
           "with / (e.g. /rstudio or /voila/render/intro.ipynb; what serves it must be "
           "installed in the environment).")


def ui_url(ui: str) -> str:
    """The server's default URL for a UI of hub.yaml."""
    return UI_NAMES.get(ui, ui)


class ServerGroup(Section):
    """What one roster group's members' servers get besides the hub-wide values."""

    env: EnvVars = Field(
        default_factory=dict,
        description="Variables for its members' servers, over the hub-wide and the "
        "environment's. A user in several groups gets, for each name, the value of the "
        "first of their groups listed under servers.groups.")


class ServersSection(Section):
    """What every user's server is started with (see docs/environments.md, "Variables and
    the UI")."""

    ui: UserInterface = Field("lab", description=UI_HELP + " environments.<name>.ui "
                              "replaces it for an environment.")
    env: EnvVars = Field(
        default_factory=dict,
        description=ENV_HELP + " Precedence: these, then environments.<name>.env, then "
        "servers.groups.<group>.env.")
    groups: dict[GroupName, ServerGroup] = Field(
        default_factory=dict,
        description="Per roster group: variables of its members' servers.")
    warm_kernels: bool = Field(
        False,
        description="IPython kernels forked from a warm parent per server (the kernel "
        "provisioner hubkeeper-forked) instead of each starting a new Python: a kernel is "
        "ready sooner and shares the imported modules' memory. Each kernel is its own "
        "process with its own state, seeds and connections; a kernel the parent cannot "
        "give starts the normal way. Local and Slurm backends (docs/environments.md, "
        "\"Warm kernels\").")
    warm: bool = Field(
        False, description="backend local: fork each server from a warm parent that has "
        "imported the server already (one per environment build, run by the hub), instead "
        "of starting a new Python: a start costs a fraction of the CPU and servers share "
        "memory. The server still runs as the user, in their cgroup, with the same "
        "environment; a start the parent cannot serve runs as usual (the hub's log says "
        "why). docs/operations.md, \"Warm starts\".")
