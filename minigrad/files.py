"""Writing a file so that no crash, full disk or Ctrl-C ever leaves a torn one.

    write_atomically("run/checkpoint.npz", lambda f: np.savez(f, **arrays))
    write_atomically("page.html", text)

The contents go to a temporary file beside ``path`` (named ``.<name>.<random>.tmp``, so a
run can find and remove what a killed process left), are flushed to disk, and the file is
renamed over ``path``.  A rename within a directory is atomic: readers see the old file
or the whole new one.  The new file gets the mode a plain ``open()`` gives (0666 minus the
umask), not ``mkstemp``'s owner-only 0600.

What is at ``path`` decides how it is written; nothing but a regular file is ever replaced:

- nothing, or a regular file: the temporary file and the rename above;
- a symbolic link: written through to the file it points to, by the same temporary file
  and rename beside that file (the link stays a link, as a shell's ``>`` keeps it);
- a character device (``/dev/null``, a terminal) or a FIFO: the contents are streamed
  into it, as ``>`` would (a stream cannot be replaced, so there is nothing atomic to
  do); a FIFO with no reader is refused rather than waited on;
- a directory, a block device, a socket, a symbolic-link loop, or the empty path: refused.

Every error is an OSError naming ``path`` as given (never the temporary file).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomically(path, contents: bytes | str | Callable[[BinaryIO], object]) -> Path:
    """Write ``contents`` (bytes, text as UTF-8, or a function that writes into the open
    binary file) to ``path`` atomically (see the module docstring for special files);
    returns the path.  An OSError names ``path`` and the reason."""
    given = os.fspath(path)
    try:
        kind = _kind(given)
        if kind == "stream":
            _stream(given, contents)
        else:
            _replace(Path(os.path.realpath(given)) if kind == "link" else Path(given), contents)
    except OSError as e:
        if e.errno is None or (e.filename == given and e.filename2 is None):
            raise
        raise OSError(e.errno, e.strerror, given) from e  # OSError(ENOSPC, ...) is the ENOSPC subclass
    return Path(given)


def _kind(path: str) -> str:
    """"new", "file", "link" (to a file or to nothing yet) or "stream"; OSError for
    anything else."""
    if not path:
        raise FileNotFoundError(errno.ENOENT, "an empty file name", path)
    try:
        mode = os.stat(path).st_mode  # follows links
    except FileNotFoundError:
        return "link" if os.path.islink(path) else "new"  # a dangling link: create its target
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "a loop of symbolic links, which leads to no file", path) from None
        raise
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return "stream"
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory; give a file name", path)
    if not stat.S_ISREG(mode):
        raise OSError(errno.EINVAL, "not a regular file, a character device or a FIFO, so not written", path)
    return "link" if os.path.islink(path) else "file"


def _write(f, contents):
    if callable(contents):
        contents(f)
    else:
        f.write(contents.encode("utf-8") if isinstance(contents, str) else contents)
    f.flush()


def _replace(path: Path, contents):
    """The temporary file beside ``path``, fsync, rename over ``path``."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            _write(f, contents)
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:  # KeyboardInterrupt too: never leave the temporary file behind
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX only)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _stream(path: str, contents):
    """Write into a character device or FIFO that stays what it is.  Opening a FIFO
    without O_NONBLOCK waits for a reader, possibly forever: with it, no reader is ENXIO."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == errno.ENXIO:
            raise OSError(errno.ENXIO, "a FIFO with no reader; start the reader first", path) from None
        raise
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)  # then block as usual
    with os.fdopen(fd, "wb") as f:
        _write(f, contents)


def is_stream(path) -> bool:
    """Whether ``path`` is a character device or a FIFO (following links), which
    ``write_atomically`` streams into instead of replacing."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read the umask is to set it
    os.umask(mask)
    return mask


def not_a_file(path) -> str | None:
    """Why ``path`` cannot be read as a regular file, in words ("no such file", "is a
    directory", "not a regular file (a FIFO)", ...), or None when it can be."""
    try:
        mode = os.stat(path).st_mode  # follows links
    except FileNotFoundError:
        if os.path.islink(path):
            return f"a symbolic link to {os.readlink(path)}, which does not exist"
        return "no such file"
    except OSError as e:
        return "a loop of symbolic links, which leads to no file" if e.errno == errno.ELOOP else e.strerror
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    kinds = {stat.S_ISFIFO: "a FIFO", stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device",
             stat.S_ISSOCK: "a socket"}
    return f"not a regular file ({next((k for test, k in kinds.items() if test(mode)), 'a special file')})"
