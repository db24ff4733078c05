"""`python -m hubkeeper`: the CLI, as the hub runs it (users admit) with its own python."""

from hubkeeper.cli.main import entry

entry()
