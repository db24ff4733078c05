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
"""

import runpy
import sys


def main() -> None:
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[assignment]
    sys.argv[0] = "jupyterhub-singleuser"
    runpy.run_module("jupyterhub.singleuser", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
