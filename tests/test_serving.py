"""Serving needs no TensorFlow: the web and a prediction worker run from requirements-serving.txt."""

import subprocess

import pytest
from django_q.tasks import async_task, result

from tests.conftest import ROOT
from tests.servers import web_server
from tests.test_prediction_queue import answer, send

SERVING_PYTHON = ROOT / ".venv-serving" / "bin" / "python"


def test_a_prediction_worker_answering_jobs_never_imports_tensorflow(trained, start_qcluster, media_root,
                                                                      ml_cache_root, demo_photos):
    # the full install, where TensorFlow could be imported: one worker, so the probe runs where the model does
    start_qcluster(Q_WORKERS="1")
    with web_server(media_root, ml_cache_root, {}) as base:
        body = answer(send(base, demo_photos["coffee"][0].read_bytes()))
    assert body["status"] == "done"
    probe = async_task("tests.probes.training_modules_loaded", save=True)
    assert result(probe, wait=60_000) == []


def test_a_serving_only_install_runs_the_web_and_a_worker(trained, start_qcluster, media_root, ml_cache_root,
                                                          demo_photos):
    if not SERVING_PYTHON.exists():
        pytest.skip(f"no serving-only venv at {SERVING_PYTHON}: `make serving-venv` makes one (make test does)")
    lacks_tensorflow = subprocess.run([SERVING_PYTHON, "-c", "import tensorflow"], check=False, capture_output=True)
    assert lacks_tensorflow.returncode != 0, "the serving venv must not have TensorFlow"
    start_qcluster(python=str(SERVING_PYTHON))
    with web_server(media_root, ml_cache_root, {}, python=str(SERVING_PYTHON)) as base:
        bodies = [answer(send(base, path.read_bytes())) for path in demo_photos["not_coffee"][:3]]
    assert {body["status"] for body in bodies} == {"done"}, bodies
