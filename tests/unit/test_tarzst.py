"""The archive's building blocks: .tar.zst written and read in one pass, truncation found at
every byte, and a tree walk that never follows what its owner swaps in."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from hubkeeper.base.tree import Changed, walk_tree
from hubkeeper.lifecycle.manifest import Entry
from hubkeeper.lifecycle.tarzst import (
    TarDamage,
    TarZstReader,
    TarZstWriter,
    _FrameWalker,
    _mtime_ns,
    _mtime_text,
    header_for,
    read_member,
    tarinfo_for,
)
from tests.conftest import require


def make_tree(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "é – 日本.txt").write_text("non-ASCII name\n")
    (root / "empty").write_bytes(b"")
    (root / "private").write_text("mine\n")
    os.chmod(root / "private", 0o600)
    (root / "big").write_bytes(os.urandom(70_000) + bytes(3_000_000))
    os.symlink("sub", root / "link")
    os.utime(root / "private", ns=(0, -1_500_000_001))  # before 1970, odd nanoseconds


def archive(root: Path, target: Path) -> list[Entry]:
    writer = TarZstWriter(target)
    entries = []
    for found in walk_tree(root):
        if found.kind == "f":
            handle, info = found.open()
            with handle:
                entry = found.entry(info)
                assert writer.add_file(entry, handle) == 0
        else:
            entry = found.entry()
            writer.add(entry)
        entries.append(entry)
    writer.close()
    return entries


def read_back(path: Path) -> tuple[list[Entry], str, int]:
    found = []
    with TarZstReader(path) as reader:
        for entry, data in reader.members():
            if data is not None:
                entry.sha256, _ = read_member(data)
            found.append(entry)
        digest, size = reader.finish()
    return found, digest, size


def test_what_is_written_reads_back_the_same(tmp_path: Path) -> None:
    make_tree(tmp_path / "home")
    target = tmp_path / "home.tar.zst"
    written = archive(tmp_path / "home", target)
    assert [e.path for e in written] == ["big", "empty", "link", "private", "sub",
                                         "sub/é – 日本.txt"]
    read, digest, size = read_back(target)
    for entry in written:
        entry.ino = None
    assert read == written
    assert digest == hashlib.sha256(target.read_bytes()).hexdigest()
    assert size == target.stat().st_size
    private = next(e for e in read if e.path == "private")
    assert private.mtime_ns == -1_500_000_001 and private.mode & 0o777 == 0o600
    assert next(e for e in read if e.path == "big").sha256 == hashlib.sha256(
        (tmp_path / "home" / "big").read_bytes()).hexdigest()


def test_gnu_tar_reads_it(tmp_path: Path) -> None:
    make_tree(tmp_path / "home")
    archive(tmp_path / "home", tmp_path / "home.tar.zst")
    require(shutil.which("zstd") is not None, "the zstd program is missing")
    listed = subprocess.run(["tar", "-I", "zstd", "-tf", str(tmp_path / "home.tar.zst")],
                            capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split("\n")[:3] == ["big", "empty", "link"]


def test_a_cut_at_any_byte_is_found(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "a.txt").write_text("hello " * 50)
    target = tmp_path / "small.tar.zst"
    archive(tmp_path / "home", target)
    whole = target.read_bytes()
    cut_file = tmp_path / "cut.tar.zst"
    for length in range(len(whole)):
        cut_file.write_bytes(whole[:length])
        with pytest.raises(TarDamage):
            read_back(cut_file)
        with TarZstReader(cut_file) as reader:
            with pytest.raises(TarDamage):
                for _, data in reader.members():
                    if data is not None:
                        read_member(data)
                reader.finish()
            digest, size, cut = reader.rest()
        assert (size, digest) == (length, hashlib.sha256(whole[:length]).hexdigest())
        assert cut or length < 4  # not even a zstd magic number: not a cut frame


def test_a_flipped_byte_is_found(tmp_path: Path) -> None:
    make_tree(tmp_path / "home")
    target = tmp_path / "home.tar.zst"
    archive(tmp_path / "home", target)
    data = bytearray(target.read_bytes())
    data[len(data) // 3] ^= 0x40
    target.write_bytes(bytes(data))
    with pytest.raises(TarDamage, match="does not decompress"):
        read_back(target)


def test_the_frame_walker_follows_several_frames_and_skippable_ones() -> None:
    one = zstandard.ZstdCompressor(write_checksum=True).compress(b"a" * 100_000)
    two = zstandard.ZstdCompressor(write_content_size=False).compress(os.urandom(300_000))
    skippable = (0x184D2A53).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"xyz"
    stream = one + skippable + two
    walker = _FrameWalker()
    for start in range(0, len(stream), 7):  # headers split across reads
        walker.feed(stream[start:start + 7])
    assert walker.complete and walker.frames == 2
    half = _FrameWalker()
    half.feed(stream[:-1])
    assert not half.complete
    with pytest.raises(TarDamage):
        _FrameWalker().feed(b"PK\x03\x04 not zstd")


@pytest.mark.parametrize("ns", [0, 1, 999_999_999, 1_700_000_000_123_456_789, -1,
                                -1_500_000_001])
def test_mtime_nanoseconds_survive_the_pax_record(ns: int) -> None:
    assert _mtime_ns(_mtime_text(ns)) == ns


def test_the_walk_does_not_follow_a_folder_swapped_for_a_symlink(tmp_path: Path) -> None:
    home, secret = tmp_path / "home", tmp_path / "etc"
    (home / "work").mkdir(parents=True)
    (home / "work" / "mine.txt").write_text("mine")
    secret.mkdir()
    (secret / "shadow").write_text("root:$6$...")
    changed: list[str] = []
    seen = []
    for found in walk_tree(home, changed):
        seen.append(found.path)
        if found.path == "work":  # listed as a folder; now its owner swaps it
            (home / "work" / "mine.txt").unlink()
            (home / "work").rmdir()
            os.symlink(secret, home / "work")
    assert seen == ["work"]
    assert changed == ["work"]


def test_a_file_swapped_for_a_symlink_is_not_opened(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("mine")
    (tmp_path / "shadow").write_text("root:$6$...")
    for found in walk_tree(tmp_path / "home"):
        (tmp_path / "home" / "notes.txt").unlink()
        os.symlink(tmp_path / "shadow", tmp_path / "home" / "notes.txt")
        with pytest.raises(Changed):
            found.open()


def test_a_file_that_shrinks_while_read_keeps_the_tar_whole(tmp_path: Path) -> None:
    target = tmp_path / "x.tar.zst"
    writer = TarZstWriter(target)
    entry = Entry("f", "f", 10, 0o100644, 0, 0, 0)
    assert writer.add_file(entry, io.BytesIO(b"12345")) == 5  # 5 bytes of zeros stood in
    writer.close()
    read, _, _ = read_back(target)
    assert read[0].size == 10 and read[0].sha256 == entry.sha256


@pytest.mark.parametrize("entry", [
    Entry("notebooks/a.ipynb", "f", 10_837, 0o100644, 1001, 1001, 1_700_000_000_123_456_789),
    Entry("data", "d", 0, 0o42770, 0, 2001, 1_700_000_000_000_000_000),
    Entry("link", "l", 0, 0o120777, 1001, 1001, -1_500_000_001, link="../sub"),
    Entry("x" * 100, "f", 0, 0o100600, 1, 1, 0),  # ustar's longest name
    Entry("x" * 100, "d", 0, 0o40700, 1, 1, 5),  # ...which the folder's "/" makes too long
    Entry("x" * 101, "f", 3, 0o100644, 1, 1, 5),
    Entry("é – 日本.txt", "f", 3, 0o100644, 1, 1, 5),
    Entry("bad-\udcff", "f", 3, 0o100644, 1, 1, 5),  # a name that is not UTF-8
    Entry("l", "l", 0, 0o120777, 1, 1, 5, link="y" * 101),
    Entry("uid", "f", 3, 0o100644, 8**7, 8**7 + 1, 5),
    Entry("huge", "f", 8**11, 0o100644, 1, 1, 5),
    Entry("future", "f", 3, 0o104755, 1, 1, 8**11 * 10**9),
])
def test_headers_are_the_bytes_tarfile_writes(entry: Entry) -> None:
    """The archive writes its own headers for speed: byte for byte what tarfile's PAX
    format gives (long, non-ASCII and large values go through tarfile itself)."""
    assert header_for(entry) == tarinfo_for(entry).tobuf(tarfile.PAX_FORMAT, "utf-8",
                                                         "surrogateescape")


def test_a_large_file_that_shrinks_keeps_the_tar_whole(tmp_path: Path) -> None:
    target = tmp_path / "x.tar.zst"
    writer = TarZstWriter(target)
    data = os.urandom(2_500_000)
    entry = Entry("f", "f", 3_000_001, 0o100644, 0, 0, 0)
    assert writer.add_file(entry, io.BytesIO(data)) == 500_001
    after = Entry("g", "f", 4, 0o100644, 0, 0, 0)
    writer.add_bytes(after, b"next")
    writer.close()
    read, _, _ = read_back(target)
    assert [(e.path, e.size, e.sha256) for e in read] == [
        ("f", 3_000_001, hashlib.sha256(data + bytes(500_001)).hexdigest()),
        ("g", 4, hashlib.sha256(b"next").hexdigest())]
    assert entry.sha256 == read[0].sha256
