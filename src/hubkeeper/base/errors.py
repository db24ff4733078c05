"""The one exception family. The CLI boundary turns these into a message and an exit code."""

from __future__ import annotations

from dataclasses import dataclass

from hubkeeper.base import exits


class HubkeeperError(Exception):
    """An error the operator can act on: `message` says what is wrong, `hint` how to fix it."""

    exit_code = exits.FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class Problem:
    """One finding in an input file, positioned for the operator."""

    file: str
    line: int | None
    column: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class InvalidInput(HubkeeperError):
    """Bad input (hub.yaml, roster, command line). Exit code 2; nothing was changed."""

    exit_code = exits.BAD_INPUT

    def __init__(self, problems: list[Problem], hint: str | None = None) -> None:
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{count} {noun} found; nothing was changed", hint)
        self.problems = problems
