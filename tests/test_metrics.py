"""Metrics and logs as operators read them, for real: a Prometheus server (Debian's package) scrapes
gunicorn's /metrics while a queue cluster answers photos; the alert rules and the dashboard's
queries run on what it scraped; JSON log lines of the web and the worker share a request id."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from django.test import Client

from classifier.models import PredictionJob
from tests.conftest import ROOT, active_version_row, wait_for
from tests.photos import jpeg
from tests.servers import free_port, web_server

OPS = ROOT / "ops"
KEY = "metrics-test-key"


def prometheus_installed() -> str:
    """The path of Debian's `prometheus`, installed with apt-get when missing and running as root."""
    if not shutil.which("prometheus"):
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.skip("needs Debian's prometheus package (apt-get install prometheus), or root to install it")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"], env=env,
                       check=True, capture_output=True)
    return shutil.which("prometheus")


def test_alert_rules_are_valid_and_fire_when_they_should():
    prometheus_installed()
    subprocess.run(["promtool", "check", "rules", OPS / "alerts.yml"], check=True, capture_output=True)
    tested = subprocess.run(["promtool", "test", "rules", "alerts.test.yml"], cwd=OPS, capture_output=True, text=True,
                            check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_metrics_are_open_like_the_api_until_keys_are_set_then_need_one(staff_client, settings):
    client = Client()  # anonymous (staff_client is pytest-django's `client`, logged in)
    assert b"coffeeclassifier_prediction_jobs{" in client.get("/metrics").content
    settings.API_KEYS = [KEY]
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200  # Prometheus' way
    assert client.get("/metrics", headers={"X-API-Key": KEY}).status_code == 200
    assert staff_client.get("/metrics").status_code == 200


@pytest.fixture
def prometheus(tmp_path):
    """start(target host:port) → the base URL of a Prometheus that scrapes it every second with the
    metrics key and evaluates the repository's alert rules every second, their `for:` shortened."""
    binary = prometheus_installed()
    servers = []

    def start(target: str) -> str:
        rules = tmp_path / "alerts.yml"
        rules.write_text(re.sub(r"\bfor: \S+", "for: 1s", (OPS / "alerts.yml").read_text()))
        config = tmp_path / "prometheus.yml"
        config.write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": "coffeeclassifier", "static_configs": [{"targets": [target]}],
                                "authorization": {"credentials": KEY}}],
        }))
        port = free_port()
        log = (tmp_path / "prometheus.log").open("w")
        servers.append(subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT,
        ))
        log.close()
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: ready(base), timeout=30, message="Prometheus to start")
        return base

    yield start
    for server in servers:
        server.terminate()
        server.wait(timeout=20)


def ready(base: str) -> bool:
    try:
        return requests.get(f"{base}/-/ready", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def query(base: str, expr: str) -> list:
    body = requests.get(f"{base}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


def value(base: str, expr: str) -> float | None:
    result = query(base, expr)
    return float(result[0]["value"][1]) if result else None


def test_prometheus_scrapes_the_answers_and_the_stall_alert_fires(
    trained, start_qcluster, prometheus, media_root, ml_cache_root, tmp_path
):
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "multiproc"), "API_KEYS": KEY}
    cluster = start_qcluster(**env)  # its watchdog keeps the default stall time: a slow job here is no stall
    with web_server(media_root, ml_cache_root, {**env, "PREDICTION_STALL_SECONDS": "2"}) as web:
        base = prometheus(web.removeprefix("http://"))
        wait_for(lambda: value(base, 'up{job="coffeeclassifier"}') == 1, timeout=30, message="a first scrape")
        assert value(base, "sum(coffeeclassifier_predictions_total)") is None  # nothing answered yet
        photos = [jpeg(name) for name in ("coffee", "chelsea", "astronaut", "rocket", "camera")]
        for photo in photos:
            response = requests.post(f"{web}/api/v1/predictions", params={"wait": 30}, headers={"X-API-Key": KEY},
                                     files={"image": ("photo.jpg", photo, "image/jpeg")}, timeout=40)
            assert response.status_code == 200 and response.json()["status"] == "done", response.text
        n = len(photos)
        wait_for(lambda: value(base, 'sum(coffeeclassifier_predictions_total{status="done"})') == n, timeout=30,
                 message=f"Prometheus to count {n} answers")
        assert value(base, "sum(coffeeclassifier_prediction_duration_seconds_count)") == n
        assert value(base, "sum(coffeeclassifier_prediction_inference_seconds_count)") == n
        assert value(base, 'max(coffeeclassifier_active_model_version{dataset="coffee"})') == 1
        assert value(base, 'count(coffeeclassifier_worker_model_version{dataset="coffee"} == 1)') >= 1
        assert value(base, "min(coffeeclassifier_worker_resident_memory_bytes)") > 10e6

        exposition = requests.get(f"{web}/metrics", headers={"X-API-Key": KEY}, timeout=10)
        assert requests.get(f"{web}/metrics", timeout=10).status_code == 401  # no key, no metrics
        linted = subprocess.run(["promtool", "check", "metrics"], input=exposition.content, capture_output=True,
                                check=False)
        assert linted.returncode == 0, linted.stdout.decode() + linted.stderr.decode()
        dashboard = json.loads((OPS / "grafana-dashboard.json").read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                query(base, target["expr"])  # each of the dashboard's queries runs

        # the cluster stops with photos waiting: the gauge the alert reads turns 1, and the alert fires
        cluster.terminate()
        cluster.wait(timeout=20)
        for photo in photos[:2]:
            response = requests.post(f"{web}/api/v1/predictions", headers={"X-API-Key": KEY},
                                     files={"image": ("photo.jpg", photo, "image/jpeg")}, timeout=10)
            assert response.status_code == 202
        wait_for(lambda: alert_state(base, "PredictionClusterStalled") == "firing", timeout=30,
                 message="the stalled-cluster alert to fire")
        assert value(base, "max(coffeeclassifier_prediction_jobs{status=\"queued\"})") == 2


def alert_state(base: str, name: str) -> str | None:
    alerts = requests.get(f"{base}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    return next((alert["state"] for alert in alerts if alert["labels"]["alertname"] == name), None)


def json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_json_log_lines_of_a_job_carry_its_request_id_in_the_web_and_the_worker(
    dataset, start_qcluster, media_root, ml_cache_root, tmp_path
):
    active_version_row(dataset)  # no model behind it: the worker logs the job's failure, which is enough here
    env = {"LOG_FORMAT": "json", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "multiproc")}
    start_qcluster(**env)
    web_log = tmp_path / "web.log"
    with web_server(media_root, ml_cache_root, env, log=web_log) as web:
        sent = requests.post(f"{web}/api/v1/predictions", files={"image": ("photo.jpg", jpeg(), "image/jpeg")},
                             headers={"X-Request-ID": "upload-42"}, timeout=10)
        assert sent.status_code == 202 and sent.headers["X-Request-ID"] == "upload-42"
        job_id = sent.json()["id"]
        wait_for(lambda: PredictionJob.objects.filter(pk=job_id, status="failed").exists(), timeout=60,
                 message="the worker to finish the job")
    worker_log = media_root.parent / "qcluster-0.log"
    wait_for(lambda: any(line.get("job_id") == job_id for line in json_lines(worker_log)), timeout=10,
             message="the worker's line, written just after the row")
    web_lines = [line for line in json_lines(web_log) if line.get("job_id") == job_id]
    worker_lines = [line for line in json_lines(worker_log) if line.get("job_id") == job_id]
    assert [line["message"].split(" job=")[0] for line in web_lines] == ["prediction queued"]
    assert [line["message"].split(" job=")[0] for line in worker_lines] == ["prediction failed"]
    assert {line["request_id"] for line in web_lines + worker_lines} == {"upload-42"}
    assert worker_lines[0]["dataset"] == "coffee" and worker_lines[0]["status"] == "failed"
    # the failure's own traceback line carries it too
    traceback = [line for line in json_lines(worker_log) if "exception" in line]
    assert traceback and {line["request_id"] for line in traceback} == {"upload-42"}
