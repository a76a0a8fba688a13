"""File plumbing shared by every stage: atomic writes, hashing, the inbox path abstraction.

Every file doudi writes goes to a temporary name in the same folder and is renamed into place
when complete, so a crash never leaves a half-written file under its final name. Files holding
personal data are created owner-only (0600).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from upath import UPath

from pipelines.faults import checkpoint

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    return path


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it onto `final` only if the block succeeds."""
    final = Path(final)
    ensure_dir(final.parent)
    # a run killed mid-write leaves its temporary file behind: the next write of the same file
    # clears it (never visible under the final name either way)
    for stale in final.parent.glob(f".{glob.escape(final.name)}.tmp-*"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.chmod(tmp, PRIVATE_FILE_MODE)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        checkpoint("io.before_rename")
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes_atomic(final: Path, data: bytes) -> None:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(final: Path, obj) -> None:
    text = json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    write_bytes_atomic(final, text.encode("utf-8"))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def inbox_path(inbox: str) -> UPath:
    """The inbox as a path that may be local or on object storage (s3://, memory://, ...)."""
    return UPath(inbox)


def entry_kind(path) -> str:
    """What an inbox entry is, without following it: "file", "folder", "symlink", "special" (a FIFO,
    a device, a socket) or "missing". On object storage there are no links: files and folders only."""
    if not isinstance(path, Path):  # fsspec (s3://, memory://): no symbolic links or devices there
        return "folder" if path.is_dir() else "file" if path.is_file() else "missing"
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "missing"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "file" if stat.S_ISREG(mode) else "folder" if stat.S_ISDIR(mode) else "special"


ENTRY_KIND_ZH = {"symlink": "符号链接", "special": "特殊文件（管道、设备或套接字）", "folder": "文件夹",
                 "missing": "不存在的文件"}


class NotARegularFile(OSError):
    """An inbox entry that is a link or a special file: refused, never followed or read."""

    def __init__(self, path, kind: str):
        super().__init__(f"{path} is a {kind}, not a regular file")
        self.kind = kind


def read_inbox_bytes(path) -> bytes:
    """The bytes of a regular file of the inbox. A symbolic link is never followed (O_NOFOLLOW) and a
    FIFO or device is never read (O_NONBLOCK: opening a FIFO does not wait for a writer; fstat on the
    opened descriptor then refuses it), so swapping a link in after the folder was listed changes nothing."""
    if not isinstance(path, Path):
        return path.read_bytes()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if entry_kind(path) in ("symlink", "special"):
            raise NotARegularFile(path, entry_kind(path)) from exc
        raise
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fh.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFile(path, "folder" if stat.S_ISDIR(mode) else "special")
        return fh.read()


def list_entries(folder) -> list:
    """Every entry of an inbox folder but hidden and temporary ones (names starting with . or ~$),
    sorted by name, whatever it is: the caller refuses what is not a regular file, never skips it
    silently."""
    if entry_kind(folder) != "folder":
        return []
    return sorted((p for p in folder.iterdir() if not p.name.startswith((".", "~$"))), key=lambda p: p.name)


def list_files(folder: UPath) -> list[UPath]:
    """Regular files of a folder, sorted by name; hidden and temporary files are ignored."""
    if not folder.exists():
        return []
    return sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith((".", "~$"))),
                  key=lambda p: p.name)


class FileRejected(Exception):
    """A delivered file that cannot be read as a whole (code: the reason code reports show)."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code
        self.detail = detail


def decode_text(data: bytes) -> tuple[str, str]:
    """Text of a CSV as counties send it: UTF-8 (with or without BOM), UTF-16, GB18030/GBK; (text, encoding)."""
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise FileRejected("FILE_UNREADABLE", f"UTF-8 BOM 但内容不是 UTF-8: {exc}") from exc
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise FileRejected("FILE_UNREADABLE", f"UTF-16 内容损坏: {exc}") from exc
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data[: 1 << 20]).best()
    if best is not None:
        try:
            return data.decode(best.encoding), best.encoding
        except (UnicodeDecodeError, LookupError):
            pass
    raise FileRejected("FILE_UNREADABLE", "编码无法识别（应为 UTF-8 或 GB18030/GBK）")
