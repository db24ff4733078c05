"""The hub.yaml examples of the users' docs load as they are printed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hubkeeper.config import parse

DOCS = Path(__file__).parents[2] / "docs"
PAGES = ("users.md", "users-github.md", "users-oidc.md", "users-ldap.md", "users-lti13.md")


def whole_examples() -> list[tuple[str, str]]:
    """Each ```yaml block that is a whole hub.yaml: fragments of a section are indented, and
    a block that builds on one 'as above' is tested by its page's own test."""
    found = []
    for page in PAGES:
        for block in re.findall(r"```yaml\n(.*?)```", (DOCS / page).read_text(), re.S):
            if not block.startswith(" ") and "as above" not in block:
                found.append((page, block))
    return found


def test_each_provider_page_has_a_whole_example() -> None:
    pages = {page for page, _ in whole_examples()}
    assert pages == set(PAGES)


@pytest.mark.parametrize(("page", "block"), whole_examples(),
                         ids=[f"{page}-{n}" for n, (page, _) in enumerate(whole_examples())])
def test_example_loads(page: str, block: str) -> None:
    spec = parse(block)
    kind = re.search(r"^  kind: (\S+)", block, re.M)
    if kind:
        assert spec.auth.kind == kind.group(1)
