"""The single-user server (`jupyterhub-singleuser`), started without its costliest import.

Run by path, `python -P .../hubkeeper/proc/singleuser.py [args]`, with the python of the
environment the server runs from; it imports nothing of hubkeeper (an environment's python
cannot), and -P keeps the user's folder off sys.path (a `json.py` there must not shadow a
module of the server).

Measured on this project's machine (docs/benchmarks.md, "Cheaper servers"), a server needs
1.9 CPU-seconds from its start to answering, and 0.8 of them go to one import: jsonschema
imports `rfc3987_syntax` when it is installed (jupyter_events asks for it), to check the "iri"
and "uri" string formats, and that module builds a grammar when it is imported. Jupyter
Server only checks its own event records with it; users see nothing of it. Marking it absent
makes jsonschema skip those two formats, as it does wherever the package is not installed.

With HUBKEEPER_HIDDEN_KERNELS set (the local and Slurm servers of environments, see
hub/spawner_steps.environment_jupyter_paths), the server does not list the kernelspecs in
that folder: Debian's packages put theirs in /usr/share/jupyter/kernels (r-cran-irkernel's
`ir`), which would offer every environment's users a kernel that hub.yaml gives only to some
(an R environment brings its own `ir` in its build, host/renv.py).

With HUBKEEPER_WARM_KERNELS set (servers.warm_kernels) the server's kernels are forked from a
warm parent (proc/kernelfork.py).
"""

import os
import runpy
import sys
import types

HIDDEN_KERNELS = "HUBKEEPER_HIDDEN_KERNELS"
WARM_KERNELS = "HUBKEEPER_WARM_KERNELS"  # servers.warm_kernels (hub/spawner_base.py)
FORKED = "hubkeeper-forked"  # the provisioner's name (proc/kernelfork.py, pyproject.toml)
MODULE = "hubkeeper_singleuser_kernelspecs"  # where the ServerApp imports the class from


def hide_kernel_folder(folder: str) -> None:
    """Have the server use a KernelSpecManager that skips `folder` (kernel_dirs is not a
    setting of jupyter_client's, so it takes a subclass)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from traitlets import default

    hidden = os.path.normpath(folder)

    class EnvironmentKernelSpecManager(KernelSpecManager):
        @default("kernel_dirs")
        def _kernel_dirs_default(self) -> list[str]:
            return [path for path in super()._kernel_dirs_default()
                    if os.path.normpath(path) != hidden]

    module = types.ModuleType(MODULE)
    module.EnvironmentKernelSpecManager = EnvironmentKernelSpecManager  # type: ignore[attr-defined]
    sys.modules[MODULE] = module
    sys.argv.append(f"--ServerApp.kernel_spec_manager_class={MODULE}."
                    "EnvironmentKernelSpecManager")


def use_forked_kernels() -> None:
    """Make hubkeeper's provisioner (proc/kernelfork.py) the server's default for kernels
    whose kernelspec names none. From the hub's venv it is found through hubkeeper's entry
    point; an environment's python cannot import hubkeeper (and may still see its metadata
    through the base .pth), so the file beside this one is loaded under the entry point's
    module name, which is then what the entry point loads."""
    import importlib.util
    from importlib.metadata import EntryPoint

    from jupyter_client.provisioning.factory import KernelProvisionerFactory

    module_name = "hubkeeper.proc.kernelfork"
    try:
        importlib.import_module(module_name)
    except ImportError:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernelfork.py")
        if not os.path.exists(path):  # backend docker mounts this file alone
            print(f"hubkeeper: {WARM_KERNELS} set but {path} is missing; kernels start the "
                  "normal way", file=sys.stderr)
            return
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    KernelProvisionerFactory.provisioners.setdefault(
        FORKED, EntryPoint(FORKED, f"{module_name}:ForkedProvisioner",
                           KernelProvisionerFactory.GROUP_NAME))
    sys.argv.append(f"--KernelProvisionerFactory.default_provisioner_name={FORKED}")


def main() -> None:
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[assignment]
    if os.environ.get(HIDDEN_KERNELS):
        hide_kernel_folder(os.environ[HIDDEN_KERNELS])
    if os.environ.get(WARM_KERNELS):
        use_forked_kernels()
    sys.argv[0] = "jupyterhub-singleuser"
    runpy.run_module("jupyterhub.singleuser", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
