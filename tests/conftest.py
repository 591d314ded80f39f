import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection

from classifier.models import ModelVersion
from dataset import groups, services
from dataset.models import Dataset, DatasetImage, Label

ROOT = Path(__file__).resolve().parent.parent
SHARED_KERAS = ROOT.parent / "shared" / "keras"
SMALL_BACKBONE_FILE = "mobilenet_2_5_224_tf_no_top.h5"


def pytest_sessionstart(session):
    """A crashed earlier run can leave the SQLite test database's WAL files behind; a new test
    database next to them would read them as its own and fail with "disk I/O error"."""
    test_database = django_settings.DATABASES["default"].get("TEST", {}).get("NAME")
    if django_settings.DATABASES["default"]["ENGINE"].endswith("sqlite3") and test_database:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{test_database}{suffix}").unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Every test writes its files under its own temporary MEDIA_ROOT."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(scope="session")
def ml_cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("ml-cache")


@pytest.fixture(autouse=True)
def ml_cache(settings, ml_cache_root):
    """Embeddings and TFLite templates are derived data: one cache serves the whole session."""
    settings.ML_CACHE_DIR = ml_cache_root
    return ml_cache_root


@pytest.fixture
def keras_home(monkeypatch):
    """A KERAS_HOME with the ImageNet weights the tests train with, or a skip that says why."""
    home = Path(os.environ.get("KERAS_HOME") or SHARED_KERAS)
    if not (home / "models" / SMALL_BACKBONE_FILE).is_file():
        pytest.skip(f"no ImageNet weights at {home}/models/ (set KERAS_HOME; see ../shared/keras/PROVENANCE.txt)")
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


@pytest.fixture
def demo_photos():
    """{label: [paths]} of the real labelled photos, or a skip that says where they were looked for."""
    source = django_settings.DEMO_DATA_DIR
    if not source.is_dir():
        pytest.skip(f"the demo photos are not at {source}")
    return {label: sorted((source / label).glob("*.jpg")) for label in ("coffee", "not_coffee")}


@pytest.fixture
def dataset(db):
    return Dataset.objects.create(name="Coffee or not", slug="coffee")


def demo_groups() -> dict[str, str]:
    """{"coffee/latte_0000.jpg": "latte_art", …}: the demo photos' KINDS.tsv, if it is there."""
    table = django_settings.DEMO_DATA_DIR / groups.DEFAULT_GROUPS_FILE
    return groups.groups_file_read(path=table) if table.is_file() else {}


def import_photos(dataset: Dataset, demo_photos: dict, per_split: dict[str, int], offset: int = 0) -> None:
    """Import the same real photos every time: for each label, per_split[split] photos per split,
    each with its group from KINDS.tsv."""
    kinds = demo_groups()
    for label_name, paths in demo_photos.items():
        label = Label.objects.get_or_create(dataset=dataset, name=label_name)[0]
        # every 7th photo, so both sources of each label (latte art, web photos…) are represented
        chosen = iter(paths[offset::7])
        for split, count in per_split.items():
            for _ in range(count):
                path = next(chosen)
                image = services.dataset_image_create(
                    dataset=dataset, data=path.read_bytes(), name=path.name, label=label, split=split,
                    source=DatasetImage.Source.IMPORT,
                )
                image.group = kinds.get(f"{path.parent.name}/{path.name}", "")
                image.save(update_fields=["group"])


@pytest.fixture
def small_dataset(dataset, demo_photos):
    """40 real photos: per label 12 train, 4 val, 4 test."""
    import_photos(dataset, demo_photos, {"train": 12, "val": 4, "test": 4})
    return dataset


@pytest.fixture
def staff_client(client, db):
    user = get_user_model().objects.create_superuser("curator", "curator@example.com", "a-long-test-password")
    client.force_login(user)
    return client


@pytest.fixture
def start_qcluster(settings, transactional_db, ml_cache_root, media_root):
    """Start real `manage.py qcluster` processes on the test database; stop them afterwards."""
    processes = []

    def start(name: str | None = None, python: str = sys.executable, **extra_env: str) -> subprocess.Popen:
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "MEDIA_ROOT": str(media_root),
            "ML_CACHE_DIR": str(ml_cache_root),
            **({"Q_CLUSTER_NAME": name} if name else {}),
            **extra_env,
        }
        # a file, not a pipe: nobody reads the log while the test runs, and a full pipe blocks the cluster
        log = (media_root.parent / f"qcluster-{len(processes)}.log").open("w")
        process = subprocess.Popen(
            [python, "manage.py", "qcluster"], cwd=ROOT, env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        processes.append(process)
        return process

    yield start
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.terminate()  # the cluster's own process stops its workers in order
    for process in running:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def database_url() -> str:
    """The URL of the test database this session uses, for processes the tests start."""
    config = connection.settings_dict
    if config["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{config['NAME']}"
    password = f":{config['PASSWORD']}" if config["PASSWORD"] else ""
    return f"postgres://{config['USER']}{password}@{config['HOST']}:{config['PORT']}/{config['NAME']}"


def wait_for(condition, *, timeout: float, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


@pytest.fixture
def trained(small_dataset, keras_home):
    call_command("train", "--dataset", small_dataset.slug, "--backbone", "mobilenet_025", "--activate",
                 "--no-progress", stdout=io.StringIO())
    return small_dataset


def active_version_row(dataset: Dataset) -> ModelVersion:
    """An active version as the web side sees it, with no model behind it: the upload path only
    checks that one exists, so tests whose jobs never run (their on_commit enqueue never fires
    inside the test's transaction) need no training."""
    return ModelVersion.objects.create(
        dataset=dataset, number=1, backbone="mobilenet_025", status=ModelVersion.Status.READY, is_active=True,
        labels=["coffee", "not_coffee"], artifact_dir=f"models/{dataset.slug}/1",
    )


# Defines peak_kb() for a script: its own process's peak resident memory. getrusage's maxrss would
# not do: a child keeps its parent's (this pytest's) across exec.
PEAK_KB = "import re\ndef peak_kb(): return int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1])\n"


def fresh_python(script: str, *args: str, stdin: bytes = b"") -> str:
    """What `script` prints, run in a fresh Python process with Django's settings named (what this
    pytest has loaded or set up must not count); a non-zero exit fails the test with its output."""
    run = subprocess.run(
        [sys.executable, "-c", script, *args], input=stdin, capture_output=True, cwd=ROOT,
        timeout=120, check=False, env={**os.environ, "DJANGO_SETTINGS_MODULE": "coffeeclassifier.settings"},
    )
    assert run.returncode == 0, (run.stdout + run.stderr).decode()
    return run.stdout.decode()


def fresh_process_output(script: str, *args: str, stdin: bytes = b"") -> str:
    """The last line `script` prints in a fresh process (`fresh_python`) that can call peak_kb();
    the test is skipped where Linux's /proc does not tell the peak."""
    if not Path("/proc/self/status").is_file():
        pytest.skip("a process's own peak memory is read from Linux's /proc/self/status")
    return fresh_python(PEAK_KB + script, *args, stdin=stdin).strip().splitlines()[-1]


@pytest.fixture
def redis_env(transactional_db):
    """The environment of processes on the production path: PostgreSQL and the Redis broker."""
    import redis

    from tests.servers import REDIS_TEST_URL, redis_available

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run with DATABASE_URL=postgres://… (the second pass of .ci/run)")
    if not redis_available():
        pytest.skip(f"no Redis at {REDIS_TEST_URL}")
    redis.Redis.from_url(REDIS_TEST_URL).flushdb()
    return {"REDIS_URL": REDIS_TEST_URL}


@pytest.fixture(params=["redis", "postgresql"])
def broker_env(request, transactional_db):
    """PostgreSQL, and the queue in Redis or, without REDIS_URL, in PostgreSQL itself."""
    if request.param == "redis":
        return request.getfixturevalue("redis_env")
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run with DATABASE_URL=postgres://… (the second pass of .ci/run)")
    return {}
