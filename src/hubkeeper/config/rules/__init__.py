"""Every rule of hub.yaml that spans fields, or spans hub.yaml x roster x mode: each returns
located `Problem`s, so `check` can report all of them at once. Schema rules (one field
alone) stay in the model.

The submodules are imported by name, not from here: the loader imports `spec`, and `mode`
imports the loader.
"""
