"""Every rule of hub.yaml that spans fields, or spans hub.yaml x roster x mode: each returns
located `Problem`s, so that `check` can report all of them at once. Schema rules (one field
alone) stay in the model.

`spec` (hub.yaml alone; the loader runs it), `cluster` (what Kubernetes cannot take),
`roster` (the groups hub.yaml names against the roster's), `mode` (the mode, backend and login
against who runs hubkeeper). They are imported by name: `mode` and `roster` import the loader,
which imports `spec`, so this module holds only the two shapes they share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hubkeeper.base.errors import Problem

# (field path, message) pairs: what a rule of the model alone finds, before it is placed.
Found = list[tuple[tuple[str | int, ...], str]]

# Places a (field path, message) at its line: LoadedSpec.problem, or the loader's own while
# it parses.
Locate = Callable[[Sequence[str | int], str], Problem]
