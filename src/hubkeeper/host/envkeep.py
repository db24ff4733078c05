"""What envs (venvs) and images (docker) share about old builds: the pin `env rollback`
leaves, and which builds a clean-up removes (see host/envs.py)."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

PIN_FILE = "pinned.json"


@dataclass(frozen=True)
class Pin:
    """`env rollback` chose `build` while hub.yaml's content for the environment was
    `content` (a content hash; docker: the context hash or the image reference)."""

    build: str
    content: str
    at: str

    @classmethod
    def read(cls, directory: Path) -> Pin | None:
        try:
            data = json.loads((directory / PIN_FILE).read_text())
            return cls(str(data["build"]), str(data["content"]), str(data.get("at", "")))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: as if there were none; the next build removes it

    def write(self, directory: Path) -> None:
        temporary = directory / f".{PIN_FILE}.{os.getpid()}"
        temporary.write_text(json.dumps({"build": self.build, "content": self.content,
                                         "at": self.at}, indent=2) + "\n")
        os.chmod(temporary, 0o644)
        os.replace(temporary, directory / PIN_FILE)

    @staticmethod
    def clear(directory: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            (directory / PIN_FILE).unlink()

    def holds(self, current: str | None, content: str) -> bool:
        """Whether the pin still decides: it names the current build and hub.yaml has not
        changed the environment since."""
        return current == self.build and content == self.content


def pin_now(directory: Path, build: str, content: str) -> Pin:
    pin = Pin(build, content, datetime.now(timezone.utc).isoformat(timespec="seconds"))
    pin.write(directory)
    return pin


def prune_order(ordered: list[str], current: str | None, keep: int,
                in_use: set[str]) -> tuple[list[str], list[str]]:
    """Of builds oldest first: (those to remove, those kept only because they are in use).
    The current build and the newest others up to `keep` in all stay."""
    others = [name for name in ordered if name != current]
    room = max(keep - (1 if current else 0), 0)
    old = others[:len(others) - room] if room else others
    return ([name for name in old if name not in in_use],
            [name for name in old if name in in_use])
