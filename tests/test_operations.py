"""Running the service: `make run`'s processes, for real (the Procfile under honcho under
coffeeclassifier.runner, as the Makefile starts them, on the test database, without the Makefile's
install and demo set-up): Ctrl-C in a terminal stops them all within 10 s and `make` exits 0; a
runner killed with SIGKILL leaves no process behind. And the admin's page of the workers."""

import os
import pty
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from classifier.models import PredictionJob, WorkerProcess
from classifier.services import workers
from tests.conftest import ROOT, active_version_row, database_url, wait_for
from tests.servers import children, descendants, free_port, healthy

HONCHO = f"{sys.prefix}/bin/honcho"


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its reaper has stopped running)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def run_env(transactional_db, media_root, ml_cache_root, tmp_path):
    port = free_port()
    env = {**os.environ, "VENV": sys.prefix, "DATABASE_URL": database_url(), "MEDIA_ROOT": str(media_root),
           "ML_CACHE_DIR": str(ml_cache_root), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus")}
    return env, port


def started(runner: subprocess.Popen, port: int) -> set[int]:
    """Wait for the web to answer and both clusters to run their workers; all their processes."""
    wait_for(lambda: healthy(f"http://127.0.0.1:{port}"), timeout=60, message="the web to answer")

    def clusters_up():
        commands = [command_line(pid) for pid in descendants(runner.pid)]
        return sum("qcluster" in command for command in commands) >= 2 * 4  # supervisor, sentinel, worker(s)…

    wait_for(clusters_up, timeout=60, message="both clusters to start their processes")
    return descendants(runner.pid)


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except FileNotFoundError:
        return ""


def gone(pids: set[int]) -> bool:
    return not any(alive(pid) for pid in pids)


def test_ctrl_c_in_a_terminal_stops_everything_and_make_exits_0(run_env, tmp_path):
    env, port = run_env
    makefile = tmp_path / "Makefile"
    makefile.write_text(f"run:\n\t{sys.executable} -m coffeeclassifier.runner {HONCHO} start --port {port}\n")
    controller, terminal = pty.openpty()

    def controlling_terminal():
        import fcntl
        import termios

        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    make = subprocess.Popen(
        ["make", "--no-print-directory", "-f", str(makefile), "run"], cwd=ROOT, env=env,
        stdin=terminal, stdout=terminal, stderr=terminal, start_new_session=True, preexec_fn=controlling_terminal,  # noqa: PLW1509 (only the child can take its terminal)
    )
    os.close(terminal)
    output = bytearray()
    reader = threading.Thread(target=lambda: drain(controller, output), daemon=True)
    reader.start()
    processes = set()
    try:
        processes = started(make, port)
        os.write(controller, b"\x03")  # what the terminal sends for Ctrl-C: SIGINT to its foreground group
        began = time.monotonic()
        code = make.wait(timeout=15)
        elapsed = time.monotonic() - began
        assert code == 0, output.decode(errors="replace")
        assert elapsed < 10, output.decode(errors="replace")
        wait_for(lambda: gone(processes), timeout=1, message="no process of the app left")
    finally:
        for pid in (processes or descendants(make.pid)) | {make.pid}:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def drain(fd: int, into: bytearray) -> None:
    """Read the terminal's output until it closes, so that no process blocks writing to it."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        into.extend(chunk)


@pytest.mark.parametrize("killed", ["honcho", "runner"])
def test_a_runner_killed_hard_leaves_no_process_behind(run_env, killed):
    env, port = run_env
    runner = subprocess.Popen(
        [sys.executable, "-m", "coffeeclassifier.runner", HONCHO, "start", "--port", str(port)], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
    )
    processes = set()
    try:
        processes = started(runner, port)
        [honcho] = children(runner.pid)
        os.kill(honcho if killed == "honcho" else runner.pid, signal.SIGKILL)
        wait_for(lambda: gone(processes), timeout=10, message="every process of the app to end")
    finally:
        for pid in (processes or descendants(runner.pid)) | {runner.pid}:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        runner.wait(timeout=10)


def test_the_workers_page_shows_each_worker_the_queues_and_recent_failures(staff_client, dataset, settings,
                                                                           monkeypatch):
    settings.WORKER_HEARTBEAT_SECONDS = 3600
    monkeypatch.setattr(workers, "_reported_pid", 0)  # as in a fresh worker (earlier tests ran jobs here)
    for _ in range(3):
        workers.worker_job_done()  # the first job writes the row; the next ones wait for the heartbeat
    row = WorkerProcess.objects.get(pid=os.getpid())
    assert row.jobs_done == 1 and row.rss_bytes > 10e6 and row.node == settings.NODE_NAME
    version = active_version_row(dataset)
    PredictionJob.objects.create(dataset=dataset, status="failed", error="OSError: the photo is gone",
                                 model_version=version)
    page = staff_client.get("/admin/classifier/workerprocess/")
    assert page.status_code == 200
    text = page.content.decode()
    assert f"{settings.NODE_NAME}:{os.getpid()}" in text
    assert "Tasks waiting per cluster" in text and "training" in text
    assert "OSError: the photo is gone" in text
