"""Real servers for the tests that run the system as separate processes: gunicorn on a free
loopback port, and the Redis the tests may use."""

import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import requests

from tests.conftest import ROOT, database_url, wait_for

REDIS_TEST_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/15")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def redis_available() -> bool:
    import redis

    try:
        return redis.Redis.from_url(REDIS_TEST_URL, socket_timeout=1).ping()
    except redis.RedisError:
        return False


@contextlib.contextmanager
def web_server(media_root, ml_cache_root, extra: dict, *, options: tuple[str, ...] = ("--threads", "4"),
               python: str = sys.executable, log: Path | None = None):
    """gunicorn on a free loopback port, on the test database, with `options` (processes, threads…),
    run by `python`; its output goes to the file `log` if one is named."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url(), "MEDIA_ROOT": str(media_root),
           "ML_CACHE_DIR": str(ml_cache_root), **extra}
    output = log.open("w") if log else None
    web = subprocess.Popen(
        [python, "-m", "gunicorn", "coffeeclassifier.wsgi", "-b", f"127.0.0.1:{port}", *options,
         "--log-level", "warning"],
        cwd=ROOT, env=env, start_new_session=True, stdout=output, stderr=subprocess.STDOUT if log else None,
    )
    if output:
        output.close()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: healthy(base), timeout=30, message="gunicorn to answer /healthz")
        yield base
    finally:
        web.terminate()
        web.wait(timeout=20)


def healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=2).status_code == 200
    except (requests.ConnectionError, requests.Timeout):  # not up yet, or its first answer is slow
        return False




def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(child) for child in path.read_text().split()]
    except FileNotFoundError:  # the process is gone
        return []


def cluster_children(cluster: subprocess.Popen) -> set[int]:
    """The sentinel's children (workers, pusher, monitor): the grandchildren of the cluster's process."""
    return {grandchild for child in children(cluster.pid) for grandchild in children(child)}


def descendants(pid: int) -> set[int]:
    found = set()
    for child in children(pid):
        found |= {child, *descendants(child)}
    return found
