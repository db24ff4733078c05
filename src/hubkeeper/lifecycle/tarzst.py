"""Zstandard-compressed tars, written and read in one pass each.

Writing hashes every member while it is added and the compressed stream while it is
written, so each file is read once. Reading hashes the compressed stream, follows its zstd
frames (python-zstandard stops silently at a truncated end; the frame walker does not), and
hands each member to the caller to hash.

The tars are standard (`tar -I zstd -xf` reads them): POSIX pax format, numeric uid/gid
(no names), modes, and mtimes to the nanosecond in a pax `mtime` record.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import zstandard

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.lifecycle.manifest import Entry

CHUNK = 1 << 20
ZSTD_THREADS = -1  # zstd's own worker threads, one per core
_TYPES = {"f": tarfile.REGTYPE, "d": tarfile.DIRTYPE, "l": tarfile.SYMTYPE}
_MODE_TYPE = {"f": stat.S_IFREG, "d": stat.S_IFDIR, "l": stat.S_IFLNK}


class TarDamage(Exception):
    """The compressed tar cannot be read to its end: the message says why."""


def _nothing(count: int) -> None:
    pass


def _mtime_text(mtime_ns: int) -> str:
    seconds, nanos = divmod(abs(mtime_ns), 10**9)
    return f"{'-' if mtime_ns < 0 else ''}{seconds}.{nanos:09d}"


def _mtime_ns(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    seconds, _, fraction = text.lstrip("-").partition(".")
    return sign * (int(seconds or 0) * 10**9 + int((fraction + "0" * 9)[:9]))


def tarinfo_for(entry: Entry) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path)
    info.type = _TYPES[entry.type]
    info.size = entry.size if entry.type == "f" else 0
    info.mode = stat.S_IMODE(entry.mode)
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""
    info.mtime = max(0, entry.mtime_ns // 10**9)
    info.pax_headers = {"mtime": _mtime_text(entry.mtime_ns)}
    if entry.type == "l":
        info.linkname = entry.link or ""
    return info


def entry_of(info: tarfile.TarInfo) -> Entry:
    """A tar member as a manifest entry (no hash yet); type '?' for what we never write."""
    kind = ("d" if info.isdir() else "f" if info.isreg() else "l" if info.issym() else "?")
    mtime = info.pax_headers.get("mtime")
    return Entry(info.name, kind, info.size if kind == "f" else 0,
                 _MODE_TYPE.get(kind, 0) | info.mode, info.uid, info.gid,
                 _mtime_ns(mtime) if mtime else int(info.mtime) * 10**9,
                 link=info.linkname if kind == "l" else None)


class _HashingSink:
    """Where the compressor writes: the file, with the SHA-256 and size of what went in.
    A failed write is a HubkeeperError naming the tar, never mistaken for a failed read."""

    def __init__(self, handle: BinaryIO, path: Path) -> None:
        self.handle = handle
        self.path = path
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        try:
            return self.handle.write(data)
        except OSError as exc:
            raise HubkeeperError(f"cannot write {self.path}: {exc.strerror}",
                                 hint="is its disk full? (`df -h`)") from None

    def flush(self) -> None:
        self.handle.flush()


# --- tar headers ---------------------------------------------------------------------------
# tarfile builds a TarInfo, copies it and formats each field through generic code: for
# archives of many small files that was most of the archive's time. The common member
# (ASCII name and link of at most 100 bytes, numbers that fit ustar's octal fields) gets
# the same bytes from the few lines below (tests/unit/test_tarzst.py compares them); any
# other goes through tarfile itself.

_FLAGS = {"f": b"0", "d": b"5", "l": b"2"}
_BLOCK = 512
_RECORD = 20 * _BLOCK  # tarfile and GNU tar pad the end to a whole record
_MAGIC = b"ustar\x0000"
_TAIL = bytes(32 + 32 + 8 + 8 + 155 + 12)  # uname, gname, devmajor, devminor, prefix, pad


def _ustar(name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, flag: bytes,
           link: bytes = b"") -> bytes:
    head = b"".join((name, bytes(100 - len(name)), b"%07o\0" % mode, b"%07o\0" % uid,
                     b"%07o\0" % gid, b"%011o\0" % size, b"%011o\0" % mtime, b"        ",
                     flag, link, bytes(100 - len(link)), _MAGIC, _TAIL))
    return head[:148] + b"%06o\0" % sum(head) + head[155:]


def _pax_mtime(text: str) -> bytes:
    """A pax extended header holding one record, `mtime=<text>`."""
    body = f" mtime={text}\n".encode()
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    records = str(length).encode() + body
    return (_ustar(b"././@PaxHeader", 0, 0, 0, len(records), 0, b"x") + records
            + bytes(-len(records) % _BLOCK))


def header_for(entry: Entry) -> bytes:
    """The tar header blocks of one member, as tarfile's PAX_FORMAT writes them."""
    size = entry.size if entry.type == "f" else 0
    mtime = max(0, entry.mtime_ns // 10**9)
    name = entry.path + "/" if entry.type == "d" else entry.path
    link = (entry.link or "") if entry.type == "l" else ""
    if (name.isascii() and link.isascii() and len(name) <= 100 and len(link) <= 100
            and entry.uid < 8**7 and entry.gid < 8**7 and size < 8**11 and mtime < 8**11):
        return _pax_mtime(_mtime_text(entry.mtime_ns)) + _ustar(
            name.encode(), stat.S_IMODE(entry.mode), entry.uid, entry.gid, size, mtime,
            _FLAGS[entry.type], link.encode())
    return tarinfo_for(entry).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _read_exactly(handle: BinaryIO, want: int) -> tuple[bytes, int]:
    """`want` bytes of handle: zeros stand in for what a file that shrank no longer has.
    Returns the data and how many bytes of it are such zeros."""
    parts = []
    got = 0
    while got < want:
        data = handle.read(want - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    if got < want:
        parts.append(bytes(want - got))
    return (parts[0] if len(parts) == 1 else b"".join(parts)), want - got


class TarZstWriter:
    """One .tar.zst being written (created exclusively, 0600). `close()` returns the
    compressed file's SHA-256 and size; it does not fsync (the caller syncs the whole
    folder once, before naming it: one `sync -f` costs less than an fsync per tar)."""

    def __init__(self, path: Path, on_bytes: Callable[[int], None] = _nothing) -> None:
        self.path = path
        self._file = open(path, "xb")  # noqa: SIM115 (closed in close())
        os.fchmod(self._file.fileno(), 0o600)
        self._sink = _HashingSink(self._file, path)
        compressor = zstandard.ZstdCompressor(level=3, threads=ZSTD_THREADS, write_checksum=True)
        self._zstd = compressor.stream_writer(self._sink, closefd=False)
        self._offset = 0  # bytes of tar written
        self._on_bytes = on_bytes

    def _put(self, data: bytes) -> None:
        self._zstd.write(data)
        self._offset += len(data)

    def add(self, entry: Entry) -> None:
        """A folder or a symlink."""
        self._put(header_for(entry))

    def add_file(self, entry: Entry, handle: BinaryIO) -> int:
        """entry.size bytes of `handle`; sets entry.sha256. Returns the bytes of zeros that
        stood in for a file that shrank while it was read (0 normally)."""
        sha = hashlib.sha256()
        header = header_for(entry)
        left, short = entry.size, 0
        while True:  # a small file is one write: header, data and padding together
            data, missing = _read_exactly(handle, min(left, CHUNK))
            short += missing
            left -= len(data)
            sha.update(data)
            self._on_bytes(len(data))
            if not left:
                self._put(b"".join((header, data, bytes(-entry.size % _BLOCK))))
                break
            self._put(header + data)
            header = b""
        entry.sha256 = sha.hexdigest()
        return short

    def add_bytes(self, entry: Entry, data: bytes) -> None:
        entry.size = len(data)
        self.add_file(entry, io.BytesIO(data))

    def close(self) -> tuple[str, int]:
        end = self._offset + 2 * _BLOCK
        self._put(bytes(2 * _BLOCK + -end % _RECORD))
        self._zstd.close()  # ends the zstd frame; closefd=False keeps our file open
        self._file.close()
        return self._sink.sha.hexdigest(), self._sink.size

    def abandon(self) -> None:
        self._file.close()


class _FrameWalker:
    """Follows zstd frame and block headers (RFC 8878) through the compressed bytes, to
    tell a complete stream from one that ends mid-frame. Block contents are skipped."""

    MAGIC = 0xFD2FB528

    def __init__(self) -> None:
        self.frames = 0
        self._state = "magic"
        self._need = 4
        self._buf = b""
        self._skip = 0
        self._after_skip = "magic"
        self._checksum = False
        self._last = False

    @property
    def complete(self) -> bool:
        return self.frames > 0 and self._state == "magic" and not self._buf and not self._skip

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            if self._skip:
                take = min(self._skip, len(view) - pos)
                self._skip -= take
                pos += take
                if not self._skip:
                    self._goto(self._after_skip)
                continue
            take = min(self._need - len(self._buf), len(view) - pos)
            self._buf += bytes(view[pos:pos + take])
            pos += take
            if len(self._buf) == self._need:
                header, self._buf = self._buf, b""
                self._header(int.from_bytes(header, "little"))

    def _goto(self, state: str) -> None:
        if state == "end":
            self.frames += 1
            state = "magic"
        self._state = state
        self._need = {"magic": 4, "descriptor": 1, "block": 3, "skippable": 4}[state]

    def _skip_then(self, count: int, state: str) -> None:
        self._after_skip = state
        self._skip = count
        if not count:
            self._goto(state)

    def _header(self, value: int) -> None:
        if self._state == "magic":
            if value == self.MAGIC:
                self._goto("descriptor")
            elif value & 0xFFFFFFF0 == 0x184D2A50:
                self._goto("skippable")
            else:
                raise TarDamage("has bytes that are not a zstd frame")
        elif self._state == "skippable":
            self._skip_then(value, "magic")
        elif self._state == "descriptor":
            single = (value >> 5) & 1
            self._checksum = bool((value >> 2) & 1)
            rest = ((0 if single else 1) + (0, 1, 2, 4)[value & 3]
                    + (single, 2, 4, 8)[value >> 6])
            self._skip_then(rest, "block")
        elif self._state == "block":
            last, kind, size = value & 1, (value >> 1) & 3, value >> 3
            if kind == 3:
                raise TarDamage("does not decompress (a reserved zstd block type)")
            if last:
                self._skip_then((1 if kind == 1 else size) + 4 * self._checksum, "end")
            else:
                self._skip_then(1 if kind == 1 else size, "block")


class _HashingSource:
    """What the decompressor reads: the file, hashed, counted and frame-walked."""

    def __init__(self, handle: BinaryIO, on_bytes: Callable[[int], None]) -> None:
        self.handle = handle
        self.sha = hashlib.sha256()
        self.size = 0
        self.walker = _FrameWalker()
        self.lost = False  # the walker met bytes that are not zstd: it stops following
        self.on_bytes = on_bytes

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.sha.update(data)
        self.size += len(data)
        self.on_bytes(len(data))
        if not self.lost:
            try:
                self.walker.feed(data)
            except TarDamage:
                self.lost = True
                raise
        return data


class TarZstReader:
    """One .tar.zst read from start to end. Iterate `members()`, reading each file's data
    before the next; then `finish()` for the compressed file's SHA-256 and size. Every
    problem reading it is a TarDamage."""

    def __init__(self, path: Path, on_bytes: Callable[[int], None] = _nothing) -> None:
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 (closed in close())
        self._source = _HashingSource(self._file, on_bytes)  # type: ignore[arg-type]
        decompressor = zstandard.ZstdDecompressor()
        self._zstd = decompressor.stream_reader(self._source, read_size=CHUNK,
                                                read_across_frames=True)

    def __enter__(self) -> TarZstReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._zstd.close()
        self._file.close()

    def members(self) -> Iterator[tuple[Entry, BinaryIO | None]]:
        """(entry, its data for a regular file) for each member; read the data before the
        next member. Raises TarDamage when the stream is damaged or cut."""
        with _as_damage(), tarfile.open(fileobj=self._zstd, mode="r|",
                                        copybufsize=CHUNK) as tar:
            for info in tar:
                yield entry_of(info), (tar.extractfile(info) if info.isreg() else None)

    def rest(self) -> tuple[str, int, bool]:
        """After a TarDamage: read the rest of the file without decompressing it. Returns
        its SHA-256, its size, and whether it ends in the middle of a zstd frame (cut short,
        rather than corrupt inside)."""
        while True:
            try:
                if not self._source.read(CHUNK):
                    break
            except TarDamage:
                continue  # the walker is lost; the hash goes on
        cut = not self._source.lost and not self._source.walker.complete
        return self._source.sha.hexdigest(), self._source.size, cut

    def finish(self) -> tuple[str, int]:
        """Read to the end of the file; (SHA-256, size) of the compressed file."""
        with _as_damage():
            while self._zstd.read(CHUNK):
                pass
            while self._source.read(CHUNK):
                pass
        if not self._source.walker.complete:
            raise TarDamage("is truncated: the compressed stream ends in the middle of a "
                            "zstd frame")
        return self._source.sha.hexdigest(), self._source.size


@contextmanager
def _as_damage() -> Iterator[None]:
    """Turn the ways a damaged stream fails (zstd, tar, short reads) into TarDamage."""
    try:
        yield
    except zstandard.ZstdError as exc:
        raise TarDamage(f"does not decompress ({exc})") from None
    except (tarfile.TarError, EOFError) as exc:
        raise TarDamage(f"is not a readable tar after decompression ({exc})") from None


def read_member(data: BinaryIO, on_chunk: Callable[[bytes], None] | None = None
                ) -> tuple[str, int]:
    """SHA-256 and size of one member's data (each chunk also given to `on_chunk`)."""
    sha = hashlib.sha256()
    size = 0
    with _as_damage():
        while chunk := data.read(CHUNK):
            sha.update(chunk)
            size += len(chunk)
            if on_chunk:
                on_chunk(chunk)
    return sha.hexdigest(), size
