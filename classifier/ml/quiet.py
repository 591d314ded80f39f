"""TensorFlow's and LiteRT's native start-up lines, dropped from this process's stderr.

TensorFlow 2.21 writes absl's "All log messages before absl::InitializeLog()" notice and its
oneDNN note from C++ whatever TF_CPP_MIN_LOG_LEVEL says (twice: at import and at its first
graph), and LiteRT announces its XNNPACK delegate on every model load. Nobody reading a training's
progress or a worker's log needs them. Within `native_noise_dropped()` file descriptor 2 is a
pipe; a thread forwards everything else as it comes, progress bars' partial lines included, and
the block ends only once all of it has been forwarded.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator

NOISE = re.compile(
    rb"(WARNING: All log messages before absl::InitializeLog\(\)|I0000 .*\] oneDNN custom operations"
    rb"|INFO: Created TensorFlow Lite XNNPACK delegate)"
)
NOISE_STARTS = (b"WARNING: All log messages", b"I0000 ", b"INFO: Created TensorFlow Lite")

_depth = 0  # nested blocks share the outermost one's pipe


def _may_be_noise(start: bytes) -> bool:
    return any(start.startswith(prefix) or prefix.startswith(start) for prefix in NOISE_STARTS)


def _forward(read: int, target: int) -> None:
    """Copy `read` to `target` until EOF, leaving out whole lines that are noise."""
    held = b""
    while chunk := os.read(read, 65536):
        data, held = held + chunk, b""
        while data:
            end = data.find(b"\n")
            piece, data = (data, b"") if end < 0 else (data[: end + 1], data[end + 1 :])
            if _may_be_noise(piece):  # at a line's start, or after a progress bar's partial line
                if end < 0:
                    held = piece  # wait for the rest of the line to judge it
                    break
                if NOISE.match(piece):
                    continue
            os.write(target, piece)
    if held:
        os.write(target, held)


@contextlib.contextmanager
def native_noise_dropped() -> Iterator[None]:
    """Run the block (or the decorated function) with the native noise left out of stderr."""
    global _depth
    _depth += 1
    if _depth > 1:
        try:
            yield
        finally:
            _depth -= 1
        return
    sys.stderr.flush()
    read, write = os.pipe()
    original = os.dup(2)
    os.dup2(write, 2)
    os.close(write)
    forwarder = threading.Thread(target=_forward, args=(read, original), name="stderr-noise-filter", daemon=True)
    forwarder.start()
    try:
        yield
    finally:
        _depth -= 1
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's last writing end: the forwarder drains it and stops
        forwarder.join(timeout=10)
        os.close(original)
        os.close(read)
