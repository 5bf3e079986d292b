"""Keep large temporary arrays on the heap instead of fresh ``mmap`` pages (glibc only).

A scan allocates dozens of 1-2 MB float arrays. glibc serves those with ``mmap`` and gives the
pages back on ``free``, so every array is page-faulted in again: that tripled the detector's
cost. Raising the mmap and trim thresholds makes glibc reuse freed heap memory instead (it keeps
at most ``_TRIM`` bytes of free heap). Called once per process by :func:`generate`; a no-op
elsewhere than glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP = 32 << 20
_TRIM = 256 << 20


@lru_cache(maxsize=1)
def keep_heap_warm() -> bool:
    """Raise glibc's mmap/trim thresholds for this process; True when it applied."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM))
