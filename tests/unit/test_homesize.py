"""host/homesize.py: what a home holds on disk, walked by descriptor, and a fair share."""

from __future__ import annotations

import os
from pathlib import Path

from hubkeeper.host.homesize import fair_share, home_usage


def test_blocks_are_counted_once_and_links_are_not_followed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "sub").mkdir(parents=True)
    (home / "sub" / "data.bin").write_bytes(os.urandom(1 << 20))
    os.link(home / "sub" / "data.bin", home / "again.bin")  # a hard link: once
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big.bin").write_bytes(os.urandom(4 << 20))
    os.symlink(outside, home / "link")  # never followed out of the home
    (home / "sparse").touch()
    os.truncate(home / "sparse", 1 << 30)  # 1G apparent, nothing allocated
    usage = home_usage(str(home))
    assert usage.complete
    assert (1 << 20) <= usage.bytes < (2 << 20)


def test_a_home_that_is_a_link_or_missing_holds_nothing(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_bytes(os.urandom(1 << 20))
    os.symlink(tmp_path / "real", tmp_path / "home")
    assert home_usage(str(tmp_path / "home")).bytes == 0
    assert home_usage(str(tmp_path / "nowhere")).bytes == 0


def test_a_deadline_gives_a_lower_bound() -> None:
    usage = home_usage(str(Path(__file__).parents[2]), deadline_seconds=0)
    assert not usage.complete


def test_the_fair_share_is_the_disk_less_the_reserve_over_the_users() -> None:
    assert fair_share(64 << 20, 3) == (64 << 20) // 3
    assert fair_share(64 << 20, 3, 24 << 20) == (40 << 20) // 3
    assert fair_share(100, 0) == 100
    assert fair_share(2 << 20, 1, 1 << 20) == 1 << 20  # one user, over half a full disk
    assert fair_share(100, 2, 500) == 0
