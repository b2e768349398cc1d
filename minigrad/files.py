"""Writing a file so that no crash, full disk or Ctrl-C ever leaves a torn one.

    write_atomically("run/checkpoint.npz", lambda f: np.savez(f, **arrays))
    write_atomically("page.html", text)

The contents go to a temporary file beside ``path`` (named ``.<name>.<random>.tmp``, so a
run can find and remove what a killed process left), are flushed to disk, and the file is
renamed over ``path``.  A rename within a directory is atomic: readers see the old file
or the whole new one.  The new file gets the mode a plain ``open()`` gives (0666 minus the
umask), not ``mkstemp``'s owner-only 0600.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomically(path, contents: bytes | str | Callable[[BinaryIO], object]) -> Path:
    """Write ``contents`` (bytes, text as UTF-8, or a function that writes into the open
    binary file) to ``path`` atomically; returns the path."""
    path = Path(path)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            if callable(contents):
                contents(f)
            else:
                f.write(contents.encode("utf-8") if isinstance(contents, str) else contents)
            f.flush()
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
    return path


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read the umask is to set it
    os.umask(mask)
    return mask
