"""hubkeeper's exit codes, one rule for every command (docs/reference.md lists them).

A verb's result says whether it succeeded; the CLI turns that, or the error it raised, into
one of these. Nothing below the CLI exits.
"""

from __future__ import annotations

OK = 0  # done; warnings allowed
FAILED = 1  # the command ran and says no: a HubkeeperError, problems remain, not reachable
BAD_INPUT = 2  # hub.yaml, the roster or the command line is invalid; nothing was changed
INTERNAL_ERROR = 70  # a bug in hubkeeper (EX_SOFTWARE)
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
