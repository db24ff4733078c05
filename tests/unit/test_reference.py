"""docs/reference.md is generated from the model and the CLI; it must match them."""

from __future__ import annotations

from pathlib import Path

from hubkeeper.cli.reference import render_reference
from hubkeeper.config.model import HubSpec

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference.md"


def test_reference_is_up_to_date() -> None:
    assert REFERENCE.read_text() == render_reference(), (
        "docs/reference.md is stale: run `.venv/bin/python -m hubkeeper.cli.reference > "
        "docs/reference.md`"
    )


def test_every_field_is_documented() -> None:
    text = render_reference()

    def walk(model: type, prefix: str) -> None:
        for name, field in model.model_fields.items():
            assert field.description, f"{prefix}{name} has no help text"
            assert f"`{prefix}{name}`" in text
            if isinstance(field.annotation, type) and hasattr(field.annotation, "model_fields"):
                walk(field.annotation, f"{prefix}{name}.")

    walk(HubSpec, "")
    for verb in ("init", "check", "render", "up", "status"):
        assert f"### `hubkeeper {verb}`" in text
