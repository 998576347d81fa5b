"""Giving memory back to the operating system after a big job in a long-lived worker process."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc


@functools.cache
def _libc():
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def release_memory() -> None:
    """Collect garbage, then ask glibc to return its free heap pages (`malloc_trim`): without it, a worker that
    once held a big import keeps that high-water mark for the rest of its life. A no-op where there is no glibc."""
    gc.collect()
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is not None:
        trim(0)
