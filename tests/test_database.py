"""The PostgreSQL backend's health check: no round trip for a silent connection, a new
connection for one the server ended."""

import os
import signal
import threading
import time

import pytest
from django.db import connection, connections


@pytest.fixture
def backend_pid():
    """The server process behind this test's connection, when this machine runs it and may signal it."""
    if connection.vendor != "postgresql":
        pytest.skip("the health check is the PostgreSQL backend's (set DATABASE_URL)")
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        pytest.skip("the PostgreSQL server runs elsewhere or as a user this test may not signal")
    return pid


@pytest.mark.django_db(transaction=True)  # the connection is ended: no test transaction to keep
def test_a_silent_connection_passes_without_asking_and_an_ended_one_is_replaced(backend_pid):
    wrapper, answers = connections["default"], []
    checker = threading.Thread(target=lambda: answers.append(wrapper.is_usable()), daemon=True)
    os.kill(backend_pid, signal.SIGSTOP)  # a server that cannot answer: a SELECT 1 would wait
    try:
        checker.start()
        checker.join(timeout=2)
        assert answers == [True], "the health check waited for the server"
    finally:
        os.kill(backend_pid, signal.SIGCONT)
        checker.join()

    ender = connections.create_connection("default")  # a second connection ends the first
    try:
        with ender.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [backend_pid])
    finally:
        ender.close()
    deadline = time.monotonic() + 5
    while connection.is_usable() and time.monotonic() < deadline:  # the goodbye is on its way
        time.sleep(0.01)
    assert not connection.is_usable()

    connection.health_check_done = False  # as at the start of a request or a queue task
    connection.close_if_health_check_failed()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != backend_pid
