"""Old builds of an environment: which a clean-up removes, and when a rollback's pin holds."""

from __future__ import annotations

from pathlib import Path

from hubkeeper.host.envkeep import Pin, pin_now, prune_order


def test_the_current_build_and_the_newest_up_to_keep_stay() -> None:
    ordered = ["a", "b", "c", "d"]
    assert prune_order(ordered, "d", 2, set()) == (["a", "b"], [])
    assert prune_order(ordered, "d", 1, set()) == (["a", "b", "c"], [])
    assert prune_order(ordered, "d", 10, set()) == ([], [])


def test_after_a_rollback_the_current_build_is_kept_whatever_its_age() -> None:
    # current is the oldest: it stays, and keep - 1 of the newest others with it
    assert prune_order(["a", "b", "c", "d"], "a", 2, set()) == (["b", "c"], [])


def test_a_build_in_use_is_never_removed_and_is_reported() -> None:
    assert prune_order(["a", "b", "c"], "c", 1, {"a"}) == (["b"], ["a"])
    assert prune_order(["a", "b", "c"], "c", 1, {"a", "b", "c"}) == ([], ["a", "b"])


def test_without_a_current_build_keep_counts_the_newest() -> None:
    assert prune_order(["a", "b", "c"], None, 2, set()) == (["a"], [])


def test_a_pin_holds_only_for_its_build_and_the_content_it_was_made_against(
        tmp_path: Path) -> None:
    assert Pin.read(tmp_path) is None
    pin = pin_now(tmp_path, "b1", "content-1")
    assert Pin.read(tmp_path) == pin
    assert pin.holds("b1", "content-1")
    assert not pin.holds("b2", "content-1")  # another build is current: a later build
    assert not pin.holds("b1", "content-2")  # hub.yaml changed the environment since
    (tmp_path / "pinned.json").write_text("{not json")
    assert Pin.read(tmp_path) is None  # unreadable: no pin, the next build removes it
    Pin.clear(tmp_path)
    Pin.clear(tmp_path)  # twice: nothing to do
    assert not (tmp_path / "pinned.json").exists()
