"""How many cores this process can really use: its CPU affinity, capped by its cgroup's CPU quota.

`os.cpu_count()` counts the host's cores. A container limited to one CPU on a 16-core node has
16 in its affinity yet is throttled, for up to a whole quota period at a time, once it runs two
threads at once; the quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`) says what it may use.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path, PurePosixPath

CGROUP_ROOT = Path("/sys/fs/cgroup")
# Which cgroup this process is in, below the root: a container sees "/" (its own cgroup is
# the root it sees), a systemd service its unit's path (where its CPUQuota= is written).
PROC_CGROUP = Path("/proc/self/cgroup")
V1_CPU_MOUNTS = ("cpu", "cpu,cpuacct")


@functools.cache
def usable_cores(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int:
    """Cores in this process's affinity, at most the whole CPUs its cgroup's quota allows (≥ 1).
    Read once (forked workers inherit the answer)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = cpu_quota(cgroup_root, proc_cgroup)
    return max(1, min(cores, int(quota))) if quota is not None else cores


def cpu_quota(cgroup_root: Path, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """CPUs per period this process may use: the tightest quota on its cgroup and the cgroups
    above it (a slice limits every service in it), or None when none is limited or known."""
    try:
        directories = cgroup_directories(cgroup_root, proc_cgroup)
    except (OSError, ValueError):  # unreadable (a security module's denial, bytes that are no text)
        return None
    quotas = [quota for directory in directories if (quota := directory_quota(directory)) is not None]
    return min(quotas, default=None)


def cgroup_directories(cgroup_root: Path, proc_cgroup: Path) -> list[Path]:
    """The directories of this process's CPU cgroup and of its ancestors that exist here.

    A container that shares the host's cgroup namespace (cgroup v1) reads a path such as
    "/docker/<id>" while its own cgroup is mounted at the root: the paths that do not exist
    are skipped and the root counts.
    """
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    bases_and_paths = []
    for line in lines:
        _, _, rest = line.partition(":")
        controllers, separator, path = rest.partition(":")
        if not separator or ".." in PurePosixPath(path).parts:  # "/../x": outside our namespace's root
            continue
        if controllers == "":  # v2: one hierarchy
            bases_and_paths.append((cgroup_root, path))
        elif "cpu" in controllers.split(","):
            bases_and_paths += [(cgroup_root / mount, path) for mount in V1_CPU_MOUNTS]
    if not bases_and_paths:
        bases_and_paths = [(cgroup_root, "/"), *((cgroup_root / mount, "/") for mount in V1_CPU_MOUNTS)]
    directories = []
    for base, path in bases_and_paths:
        directory = base / path.strip("/")
        while True:
            if directory.is_dir() and directory not in directories:
                directories.append(directory)
            if directory == base:
                break
            directory = directory.parent
    return directories


def directory_quota(directory: Path) -> float | None:
    """One cgroup's CPUs per period (v2 `cpu.max`, or v1's quota and period), None if unlimited."""
    try:
        limit, period = (directory / "cpu.max").read_text().split()[:2]  # "max 100000", "150000 100000"
    except (OSError, ValueError):
        try:
            limit = (directory / "cpu.cfs_quota_us").read_text().strip()  # "-1" when unlimited
            period = (directory / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        allowed = int(limit) / int(period)
    except (ValueError, ZeroDivisionError):  # "max"
        return None
    return allowed if allowed > 0 else None
