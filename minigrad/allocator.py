"""Let the C allocator keep and reuse the big buffers numpy frees.

glibc's malloc serves large blocks (over 128 KiB, adapting up to 32 MiB) with a fresh
``mmap`` and gives them back to the OS with ``munmap`` on ``free``.  A training step
allocates and frees the same large temporaries (activations, gradients) every step, so
each one costs page faults on freshly zeroed pages.  Raising the mmap and trim
thresholds makes freed blocks stay in the heap, ready for the next step: 15-35% of a
training step on this project's benchmarks.  Peak memory is unchanged (it is still the
largest set of live buffers); memory is just not handed back between steps.

``import minigrad`` calls :func:`tune_allocator` once, unless the environment variable
``MINIGRAD_TUNE_MALLOC=0`` is set.  Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt parameter numbers from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3


def tune_allocator(mmap_threshold=32 * 2**20, trim_threshold=2**30, top_pad=64 * 2**20) -> bool:
    """Serve blocks below ``mmap_threshold`` bytes from the heap, keep up to
    ``trim_threshold`` bytes of freed heap, and grow it ``top_pad`` bytes at a time.
    Returns True if glibc accepted the settings."""
    if os.environ.get("MINIGRAD_TUNE_MALLOC", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl)
        return False
    settings = ((M_MMAP_THRESHOLD, mmap_threshold), (M_TRIM_THRESHOLD, trim_threshold), (M_TOP_PAD, top_pad))
    return all(mallopt(parameter, value) == 1 for parameter, value in settings)
