"""`python -m coffeeclassifier.runner COMMAND…`: how `make run` runs honcho, so that stopping it,
gently or not, leaves nothing running.

- In a terminal, COMMAND's process group becomes the terminal's foreground group: Ctrl-C reaches
  COMMAND and not `make`, which would otherwise die of the signal whatever COMMAND did; COMMAND
  stopping on that Ctrl-C (exit 130) is the stop asked for, and this exits 0.
- Linux sends COMMAND SIGTERM when this process dies, even by SIGKILL (PR_SET_PDEATHSIG).
- Whatever COMMAND leaves behind when it ends (honcho killed with SIGKILL leaves its processes)
  is reparented here (PR_SET_CHILD_SUBREAPER) and stopped: SIGTERM, then SIGKILL after
  LEFTOVER_GRACE_SECONDS.

Elsewhere than Linux only the first holds.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1  # linux/prctl.h
PR_SET_CHILD_SUBREAPER = 36
INTERRUPTED = 128 + signal.SIGINT
LEFTOVER_GRACE_SECONDS = 4.0
LINUX = sys.platform.startswith("linux")


def prctl(option: int, value: int) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(option, value)


def foreground_group(fd: int, group: int) -> None:
    """Make `group` the terminal's foreground process group (SIGTTOU would stop a background caller)."""
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(fd, group)
    finally:
        signal.signal(signal.SIGTTOU, previous)


def descendants(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
        for child in children:
            found |= {child, *descendants(child)}
    return found


def leftovers_stop() -> None:
    """Stop the processes left under this one: SIGTERM, then SIGKILL what outlives the grace."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in descendants(os.getpid()):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + LEFTOVER_GRACE_SECONDS
        while time.monotonic() < deadline:
            try:
                while os.waitpid(-1, os.WNOHANG)[0]:  # orphans are this process's children now
                    pass
            except ChildProcessError:
                return  # none left
            time.sleep(0.05)


def run(command: list[str]) -> int:
    """Run COMMAND as described above; its exit code, 0 for a stop by Ctrl-C."""
    terminal = sys.stdin.fileno() if sys.stdin.isatty() else None
    owner = os.tcgetpgrp(terminal) if terminal is not None else None
    in_foreground = owner is not None and owner == os.getpgrp()
    if in_foreground:
        os.setpgid(0, 0)
        foreground_group(terminal, os.getpgrp())
    if LINUX:
        prctl(PR_SET_CHILD_SUBREAPER, 1)
    try:
        die_with_this = (lambda: prctl(PR_SET_PDEATHSIG, signal.SIGTERM)) if LINUX else None
        child = subprocess.Popen(command, preexec_fn=die_with_this)  # noqa: PLW1509 (this process has no threads)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # COMMAND decides how to stop; this waits for it
        code = child.wait()
        if LINUX:
            leftovers_stop()
    finally:
        if in_foreground:
            foreground_group(terminal, owner)
    return 0 if code == INTERRUPTED else code


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
