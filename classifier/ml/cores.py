"""How many cores this process can really use: its CPU affinity, capped by a container's CPU quota.

`os.cpu_count()` counts the host's cores. A container limited to one CPU on a 16-core node has
16 in its affinity yet is throttled, for up to a whole quota period at a time, once it runs two
threads at once; the quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`) says what it may use.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

# A container (Docker, Kubernetes) sees its own cgroup here; elsewhere (a systemd unit's
# CPUQuota=, a limit on a parent cgroup) no quota is found and the affinity counts.
CGROUP_ROOT = Path("/sys/fs/cgroup")


@functools.cache
def usable_cores(cgroup_root: Path = CGROUP_ROOT) -> int:
    """Cores in this process's affinity, at most the whole CPUs its cgroup's quota allows (≥ 1).
    Read once (forked workers inherit the answer)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = cpu_quota(cgroup_root)
    return max(1, min(cores, int(quota))) if quota is not None else cores


def cpu_quota(cgroup_root: Path) -> float | None:
    """CPUs per period the cgroup may use, or None when it is unlimited or unknown."""
    try:
        limit, period = (cgroup_root / "cpu.max").read_text().split()[:2]  # v2: "max 100000", "150000 100000"
    except (OSError, ValueError):
        for v1 in ("cpu", "cpu,cpuacct"):
            try:
                limit = (cgroup_root / v1 / "cpu.cfs_quota_us").read_text().strip()  # "-1" when unlimited
                period = (cgroup_root / v1 / "cpu.cfs_period_us").read_text().strip()
                break
            except OSError:
                continue
        else:
            return None
    try:
        allowed = int(limit) / int(period)
    except (ValueError, ZeroDivisionError):  # "max"
        return None
    return allowed if allowed > 0 else None
