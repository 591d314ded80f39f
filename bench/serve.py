"""Serving figures, side by side in one run, client and servers on this machine (loopback).

    .venv/bin/python bench/serve.py [--requests 300] [--seconds 15] [--clients 16] [--soak N | --soak-seconds S]
        [--systems NAME=DIR,…] [--backbone NAME] [--brokers redis,orm] [--sqlite] [--peers sync,keras,seed,bentoml,celery]

Needs PostgreSQL (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/coffeeclassifier_bench,
dropped and re-created) and Redis (BENCH_REDIS_URL, default redis://127.0.0.1:6379/14, flushed).
Prepares a dataset from the demo photos, trains and activates mobilenet_v2 (or --backbone), then measures:
- raw floor: decode + LiteRT Predictor in this process, no HTTP (the demo photos, and the same
  enlarged to a phone camera's 12 megapixels);
- this system: gunicorn (2 processes × 8 threads) + qcluster (2 workers), HTTP POST then GET
  ?wait= until answered, with the Redis broker and with the ORM broker;
- sync LiteRT view: the same model run inside the request, gunicorn 2 sync workers;
- naive Keras view: the Keras model loaded once per process, `predict` in the request;
- seed design: the Keras model loaded inside each request;
- BentoML: the sync view's Predictor in a BentoML service (bench/bentoml_service.py, 2 workers), run
  by BENTOML_PYTHON (default .venv-bentoml/bin/python: BentoML is no project dependency);
- Celery: Django + Celery 5 with the same guarantees (bench/celery_peer: the job row in the same
  database, acks_late and reject_on_worker_lost, the model loaded once per worker process), gunicorn
  (2 processes × 8 threads) waiting on `AsyncResult.get`, a prefork worker of 2 processes, Redis
  broker and results on BENCH_CELERY_REDIS_URL (default redis://127.0.0.1:6379/15, flushed), run
  by CELERY_PYTHON (default .venv-celery/bin/python: `python3.11 -m venv .venv-celery`, then
  `.venv-celery/bin/python -m pip install -r bench/requirements-celery.txt`).
For each: latency at 1 client (p50, p99), then throughput at N clients for a fixed time, and
failed requests; for the system and Celery also jobs lost (not done), worker RSS before and after
and the CPU time each process group spends per answer.
`--systems` measures other checkouts of this project beside this one, each on its own database
and media folder, one after another for each broker, e.g. a speed-up's with and without:
`git worktree add /tmp/before <commit>`, then `--systems now=.,before=/tmp/before`.
`--sqlite` then measures this checkout on SQLite (a file under BENCH_SCRATCH) with the ORM broker,
the embedded default.
`--soak N` then pushes N more jobs through the first system on Redis (`--soak-seconds S`: for S seconds),
sampling worker RSS and the pace, counting failed requests and jobs not done.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/coffeeclassifier_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
SOURCE = ROOT.parent / "shared" / "data" / "coffee-or-not"
SCRATCH = Path(os.environ.get("BENCH_SCRATCH", "/tmp/coffeeclassifier-bench"))
BENTOML_PYTHON = os.environ.get("BENTOML_PYTHON", str(ROOT / ".venv-bentoml" / "bin" / "python"))
CELERY_PYTHON = os.environ.get("CELERY_PYTHON", str(ROOT / ".venv-celery" / "bin" / "python"))
CELERY_REDIS_URL = os.environ.get("BENCH_CELERY_REDIS_URL", "redis://127.0.0.1:6379/15")


@dataclass(frozen=True)
class System:
    """A checkout of this project to measure, with its own database and media folder."""

    name: str
    root: Path
    sqlite: bool = False  # the embedded default: a SQLite file under SCRATCH, not PostgreSQL

    @property
    def database_url(self) -> str:
        if self.sqlite:
            return f"sqlite:///{SCRATCH / f'{self.name}.sqlite3'}"
        return DATABASE_URL if self.name == "this" else f"{DATABASE_URL}_{self.name}"


THIS = System("this", ROOT)


def base_env(system: System = THIS, **extra) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": system.database_url,
        "MEDIA_ROOT": str(SCRATCH / ("media" if system.name == "this" else f"media-{system.name}")),
        "ML_CACHE_DIR": str(SCRATCH / "cache"),
        "KERAS_HOME": os.environ.get("KERAS_HOME", str(ROOT.parent / "shared" / "keras")),
        # production settings: DEBUG off (no query log), plain HTTP on loopback
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789abcdef",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "SECURE_HSTS_SECONDS": "0",
        "BENCH_DATASET": "bench",
        "DEFAULT_DATASET_SLUG": "bench",
        "Q_RECYCLE": "1000000",  # measure memory as it is, not as recycling hides it
        "PREDICTION_RATE_LIMIT": "0",  # one client address sends everything here
        # and holds every thread with waits on purpose: what is measured is the system at full load
        "PREDICTION_WAITS_PER_CLIENT": "0",
        "PREDICTION_WAITS_PER_PROCESS": "0",
        **extra,
    }


def manage(*args, system: System = THIS):
    subprocess.run([sys.executable, "manage.py", *args], cwd=system.root, env=base_env(system), check=True,
                   stdout=subprocess.DEVNULL)


def prepare(system: System = THIS, backbone: str = "mobilenet_v2"):
    from bench.import_images import recreate_postgres_database

    if system.sqlite:
        SCRATCH.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(system.database_url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    else:
        recreate_postgres_database(system.database_url)
    manage("migrate", "--noinput", system=system)
    manage("import_images", str(SOURCE), "--dataset", "bench", "--no-progress", system=system)
    manage("train", "--dataset", "bench", "--backbone", backbone, "--activate", "--no-progress", system=system)


@contextlib.contextmanager
def process(args, env, cwd: Path = ROOT):
    child = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        yield child
    finally:
        family = process_family(child.pid)  # BentoML's workers start sessions of their own: not in the group
        child.terminate()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, 9)
            for pid in family:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
            child.wait()


def gunicorn(port: int, env: dict, workers: int, threads: int, system: System = THIS, python: str = sys.executable):
    return process([python, "-m", "gunicorn", "coffeeclassifier.wsgi", "-b", f"127.0.0.1:{port}",
                    "-w", str(workers), "--threads", str(threads), "--log-level", "warning"], env, system.root)


def package_version(python: str, package: str) -> str | None:
    """The version of `package` in the venv of `python`, or None when there is none."""
    with contextlib.suppress(OSError):
        found = subprocess.run([python, "-c", f"import {package}; print({package}.__version__)"],
                               capture_output=True, text=True, check=False)
        if found.returncode == 0:
            return found.stdout.split()[-1]
    return None


def bentoml_serve(port: int, directory: Path):
    """bench/bentoml_service.py, told the model directory: its venv has no Django to look it up."""
    env = {**os.environ, "BENCH_MODEL_DIR": str(directory), "BENTOML_HOME": str(SCRATCH / "bentoml"),
           "BENTOML_DO_NOT_TRACK": "True"}
    return process([BENTOML_PYTHON, "-m", "bentoml", "serve", "bentoml_service:Classifier", "--working-dir",
                    str(ROOT / "bench"), "--host", "127.0.0.1", "--port", str(port)], env)


@contextlib.contextmanager
def celery_serve(port: int):
    """The Celery peer (bench/celery_peer): its gunicorn and its prefork worker, both run by
    CELERY_PYTHON, on a flushed Redis database; yields (web, worker)."""
    import redis

    redis.Redis.from_url(CELERY_REDIS_URL).flushdb()
    env = base_env(DJANGO_SETTINGS_MODULE="bench.celery_peer.settings", BENCH_CELERY_REDIS_URL=CELERY_REDIS_URL)
    with gunicorn(port, env, workers=2, threads=8, python=CELERY_PYTHON) as web, process(
        [CELERY_PYTHON, "-m", "celery", "-A", "bench.celery_peer.celery_app", "worker", "--pool", "prefork",
         "--concurrency", "2", "--loglevel", "warning"], env
    ) as worker:
        yield web, worker


def wait_ready(url: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # a timeout too: BentoML's arbiter holds the socket, a request can wait there for a worker
        with contextlib.suppress(requests.ConnectionError, requests.Timeout):
            if requests.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def rss_mb(pids) -> list[float]:
    sizes = []
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]) / 1024)
    return sizes


def cluster_worker_pids(cluster_pid: int) -> list[int]:
    """The worker processes of a qcluster: the grandchildren that do the work (largest RSS)."""
    out = subprocess.run(["ps", "-o", "pid=,ppid=,rss=", "-e"], capture_output=True, text=True, check=True).stdout
    rows = [tuple(map(int, line.split())) for line in out.splitlines() if line.strip()]
    children = {pid for pid, ppid, _ in rows if ppid == cluster_pid}
    family = [(pid, rss) for pid, ppid, rss in rows if ppid in children or pid in children]
    return [pid for pid, _ in sorted(family, key=lambda item: -item[1])[:2]]


def process_family(pid: int) -> list[int]:
    """A process and all its descendants."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
    family, grew = {pid}, True
    while grew:
        children = {child for child, parent in parents.items() if parent in family} - family
        family |= children
        grew = bool(children)
    return sorted(family)


def named_processes(*pgrep_args: str) -> list[int]:
    found = subprocess.run(["pgrep", *pgrep_args], capture_output=True, text=True, check=False)  # 1: none
    return [int(pid) for pid in found.stdout.split()]


def cpu_seconds(pids) -> float:
    """User + system CPU time of the processes (all their threads), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Load:
    """Sequential latency at one client, then throughput at many for a fixed time."""

    def __init__(self, call, photos):
        self.call, self.photos = call, photos

    def latency(self, count: int) -> dict:
        session = requests.Session()
        times, failures = [], 0
        for index in range(count):
            started = time.perf_counter()
            ok = self.call(session, self.photos[index % len(self.photos)])
            times.append((time.perf_counter() - started) * 1000)
            failures += not ok
        return {"p50": statistics.median(times), "p99": percentile(times, 0.99), "failed": failures, "n": count}

    def throughput(self, clients: int, seconds: float, processes: dict | None = None) -> dict:
        """Answers per second at `clients`; with `processes` ({name: pids}), also the CPU time
        each group of processes spent per answer (the client is this process)."""
        processes = {**(processes or {}), "client": [os.getpid()]}
        cpu_before = {name: cpu_seconds(pids) for name, pids in processes.items()}
        done, failed = [0], [0]
        lock = threading.Lock()
        stop = time.monotonic() + seconds

        def client(offset):
            session = requests.Session()
            index = offset
            while time.monotonic() < stop:
                ok = self.call(session, self.photos[index % len(self.photos)])
                index += clients
                with lock:
                    done[0] += ok
                    failed[0] += not ok

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        cpu_ms = {name: (cpu_seconds(pids) - cpu_before[name]) * 1000 / max(done[0], 1)
                  for name, pids in processes.items()}
        return {"per_second": done[0] / elapsed, "ok": done[0], "failed": failed[0], "cpu_ms": cpu_ms}


def system_call(base: str, *, one_request: bool = False):
    """One answer from this system: POST, then GET ?wait= until answered; or, with `one_request`,
    POST ?wait= that answers 200 with the prediction itself."""
    def call(session, data):
        try:
            response = session.post(f"{base}/api/v1/predictions", files={"image": ("p.jpg", data, "image/jpeg")},
                                    params={"wait": 20} if one_request else None, timeout=30)
            if one_request:
                return response.status_code == 200 and response.json()["status"] == "done"
            if response.status_code != 202:
                return False
            body = session.get(response.json()["url"], params={"wait": 20}, timeout=30).json()
            return body["status"] == "done"
        except requests.RequestException:
            return False

    return call


def peer_call(url: str):
    def call(session, data):
        try:
            return session.post(url, files={"image": ("p.jpg", data, "image/jpeg")}, timeout=120).status_code == 200
        except requests.RequestException:
            return False

    return call


def jobs_not_done(system: System = THIS) -> tuple[int, int]:
    code = ("from classifier.models import PredictionJob as J;"
            "print(J.objects.exclude(status='done').count(), J.objects.count())")
    out = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=system.root, env=base_env(system),
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[-2]), int(out[-1])


def report(name, latency, throughput=None, extra=""):
    line = f"{name:34} p50 {latency['p50']:8.1f} ms  p99 {latency['p99']:8.1f} ms  (n={latency['n']}, failed {latency['failed']})"
    if throughput:
        line += f"  | {throughput['per_second']:7.1f} req/s ok {throughput['ok']} failed {throughput['failed']}"
        line += "  | CPU ms per answer: " + ", ".join(f"{name} {ms:.1f}" for name, ms in throughput["cpu_ms"].items())
    print(line + extra, flush=True)


def active_directory(system: System) -> Path:
    """The active version's artifacts of `system`, looked up with Django in this process."""
    import django

    os.environ.update(base_env(system))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coffeeclassifier.settings")
    django.setup()
    from classifier import selectors
    from dataset.models import Dataset

    return selectors.artifact_path(version=selectors.active_version(dataset=Dataset.objects.get(slug="bench")))


def raw_floor(photos, directory: Path, *, name: str = "raw floor (no HTTP)", count: int = 300):
    from classifier.ml.predictor import Predictor

    predictor = Predictor(directory)
    decode, invoke, total = [], [], []
    for index in range(count):
        data = photos[index % len(photos)]
        started = time.perf_counter()
        pixels = predictor.model_input(data)
        middle = time.perf_counter()
        predictor.predict_pixels(pixels)
        finished = time.perf_counter()
        decode.append((middle - started) * 1000)
        invoke.append((finished - middle) * 1000)
        total.append((finished - started) * 1000)
    print(f"{name:34} p50 {statistics.median(total):8.2f} ms  (decode+resize "
          f"{statistics.median(decode):.2f} ms, LiteRT invoke {statistics.median(invoke):.2f} ms, 1 thread)", flush=True)


def phone_photos(photos, count: int = 5) -> list[bytes]:
    """Demo photos enlarged to a phone camera's 12 megapixels (4032 × 3024, JPEG quality 90): what
    people upload, where the demo photos are at most 512 px. Enlarged photos hold less fine detail
    than real ones, so a real photo of that size decodes somewhat slower."""
    import io

    from PIL import Image

    enlarged = []
    for data in photos[:count]:
        image = Image.open(io.BytesIO(data)).convert("RGB").resize((4032, 3024), Image.Resampling.BICUBIC)
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=90)
        enlarged.append(out.getvalue())
    return enlarged


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--soak", type=int, default=0, help="Then push this many more jobs (Redis, POST ?wait).")
    parser.add_argument("--soak-seconds", type=float, default=0, help="Or push jobs for this long.")
    parser.add_argument("--skip-prepare", action="store_true", help="Reuse the database and model of the last run.")
    parser.add_argument("--backbone", default="mobilenet_v2", help="The model the systems serve.")
    parser.add_argument("--brokers", default="redis,orm", help="Which brokers to measure the systems on.")
    parser.add_argument("--sqlite", action="store_true",
                        help="Then this checkout on SQLite with the ORM broker (the embedded default).")
    parser.add_argument("--systems", default="this=.",
                        help="Checkouts of this project to measure, NAME=DIR comma-separated; 'this' is this one.")
    parser.add_argument("--peers", default="sync,keras,seed,bentoml,celery",
                        help="Which peers to measure, comma-separated from sync, keras, seed, bentoml, celery; "
                             "empty for none.")
    args = parser.parse_args()
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
          flush=True)
    systems = [System(name, ROOT if name == "this" else Path(folder).resolve())
               for name, folder in (item.split("=", 1) for item in args.systems.split(","))]
    runs = [(broker, system) for broker in args.brokers.split(",") for system in systems]
    if args.sqlite:
        systems.append(System("sqlite", ROOT, sqlite=True))
        runs.append(("orm", systems[-1]))
    for system in systems:
        if args.skip_prepare:
            manage("migrate", "--noinput", system=system)
        else:
            prepare(system, args.backbone)
    photos = [path.read_bytes() for path in sorted(SOURCE.glob("*/*.jpg"))[::15]]
    phones = phone_photos(photos)
    directory = active_directory(systems[0])
    raw_floor(photos, directory)
    raw_floor(phones, directory, name="raw floor, 12 MP photo", count=50)

    import redis

    for broker, system in runs:
        extra = {"REDIS_URL": REDIS_URL} if broker == "redis" else {}
        if broker == "redis":
            redis.Redis.from_url(REDIS_URL).flushdb()
        env = base_env(system, **extra)
        label = "this system" if len(systems) == 1 else system.name
        with gunicorn(8101, env, workers=2, threads=8, system=system) as web, process(
            [sys.executable, "manage.py", "qcluster"], env, system.root
        ) as cluster:
            base = "http://127.0.0.1:8101"
            wait_ready(f"{base}/healthz")
            Load(system_call(base), photos).latency(20)  # warm-up: the workers load the model
            workers = cluster_worker_pids(cluster.pid)
            before = rss_mb(workers)
            processes = {"web": process_family(web.pid), "cluster": process_family(cluster.pid),
                         "PostgreSQL": named_processes("-u", "postgres")}
            if broker == "redis":
                processes["Redis"] = named_processes("-x", "redis-server")
            for one_request in (False, True):
                load = Load(system_call(base, one_request=one_request), photos)
                latency = load.latency(args.requests)
                throughput = load.throughput(args.clients, args.seconds, processes)
                time.sleep(2)
                not_done, total = jobs_not_done(system)
                flow = "POST ?wait" if one_request else "POST + GET"
                report(f"{label}, {broker}, {flow}", latency, throughput,
                       f"  | jobs {total}, not done {not_done}; worker RSS MB {[round(m) for m in before]} -> "
                       f"{[round(m) for m in rss_mb(workers)]}")
            if broker == "redis":
                phone_latency = Load(system_call(base, one_request=True), phones).latency(50)
                report(f"{label}, redis, POST ?wait, 12 MP", phone_latency)
                if (args.soak or args.soak_seconds) and system is systems[0]:
                    soak(load, workers, args.clients, jobs=args.soak, seconds=args.soak_seconds)

    peer_env = base_env(DJANGO_SETTINGS_MODULE="bench.peer_settings")
    peers = {
        "sync": ("sync LiteRT view", "sync-litert", args.requests, args.seconds),
        "keras": ("naive Keras view", "naive-keras", 30, args.seconds),
        "seed": ("seed design (load per request)", "seed", 5, 0),
        "bentoml": ("BentoML, same Predictor", "predict", args.requests, args.seconds),
    }
    for key in (key for key in args.peers.split(",") if key):
        if key == "celery":
            celery_peer(photos, count=args.requests, clients=args.clients, seconds=args.seconds)
            continue
        name, path, count, seconds = peers[key]
        if key != "bentoml":
            label, port, serving = "gunicorn", 8102, gunicorn(8102, peer_env, workers=2, threads=1)
        elif version := package_version(BENTOML_PYTHON, "bentoml"):
            label, port, serving = f"BentoML {version}", 8103, bentoml_serve(8103, directory)
        else:
            print(f"BentoML skipped: none in {BENTOML_PYTHON}; python3.11 -m venv .venv-bentoml, then pip install "
                  "there bentoml and requirements.txt's numpy, pillow, ai-edge-litert (or set BENTOML_PYTHON)",
                  flush=True)
            continue
        with serving as server:
            base = f"http://127.0.0.1:{port}"
            wait_ready(f"{base}/readyz")  # gunicorn: any answer (404); BentoML: 200 once its workers have loaded
            load = Load(peer_call(f"{base}/{path}"), photos)
            load.latency(2)  # warm-up
            latency = load.latency(count)
            family = process_family(server.pid)
            throughput = load.throughput(args.clients, seconds, {"web": family}) if seconds else None
            report(name, latency, throughput,
                   f"  | {label} total RSS {sum(rss_mb(family)):.0f} MB in {len(family)} processes")


def celery_peer(photos, *, count: int, clients: int, seconds: float):
    """The Celery peer measured as the system is: latency, then throughput with the CPU time of
    each process group per answer, its jobs not done and its worker processes' RSS."""
    version = package_version(CELERY_PYTHON, "celery")
    if version is None:
        print(f"Celery skipped: none in {CELERY_PYTHON}; python3.11 -m venv .venv-celery, then "
              ".venv-celery/bin/python -m pip install -r bench/requirements-celery.txt (or set CELERY_PYTHON)",
              flush=True)
        return
    not_done_before, total_before = jobs_not_done()
    with celery_serve(8104) as (web, worker):
        base = "http://127.0.0.1:8104"
        wait_ready(f"{base}/readyz")  # any answer (404): gunicorn is up
        load = Load(peer_call(f"{base}/predict"), photos)
        load.latency(20)  # warm-up: waits for the worker processes, which load the model as they start
        workers = cluster_worker_pids(worker.pid)
        before = rss_mb(workers)
        processes = {"web": process_family(web.pid), "Celery": process_family(worker.pid),
                     "PostgreSQL": named_processes("-u", "postgres"), "Redis": named_processes("-x", "redis-server")}
        latency = load.latency(count)
        throughput = load.throughput(clients, seconds, processes)
        time.sleep(2)
        not_done, total = jobs_not_done()
        report(f"Celery {version}, redis, get()", latency, throughput,
               f"  | jobs {total - total_before}, not done {not_done - not_done_before}; worker RSS MB "
               f"{[round(m) for m in before]} -> {[round(m) for m in rss_mb(workers)]}")


def soak(load: Load, workers, clients: int, *, jobs: int = 0, seconds: float = 0):
    """Push `jobs` more jobs, or push for `seconds`, at full speed from `clients`, counting
    failures and sampling the worker processes' memory and the pace every 10 s."""
    samples, paces = [], []
    sent, failed = [0], [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds if seconds else None

    def client(offset):
        session = requests.Session()
        index = offset
        while True:
            with lock:
                if (jobs and sent[0] >= jobs) or (stop_at and time.monotonic() >= stop_at):
                    return
                sent[0] += 1
            ok = load.call(session, load.photos[index % len(load.photos)])
            index += clients
            if not ok:
                with lock:
                    failed[0] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    last_sent, last_time = 0, started
    while any(thread.is_alive() for thread in threads):
        window_end = time.perf_counter() + 10
        for thread in threads:  # the last window ends with the last client
            thread.join(max(0.0, window_end - time.perf_counter()))
        samples.append(rss_mb(workers))
        now = time.perf_counter()
        if now - last_time >= 9 or not paces:  # the last, short window also drains the clients
            paces.append((sent[0] - last_sent) / (now - last_time))
        last_sent, last_time = sent[0], now
    elapsed = time.perf_counter() - started
    flat = [size for sample in samples for size in sample]
    not_done, total = jobs_not_done()
    print(f"soak: {sent[0]} jobs in {elapsed:.0f} s ({sent[0] / elapsed:.1f}/s; per 10 s: min {min(paces):.1f}, "
          f"max {max(paces):.1f}), failed {failed[0]}; worker RSS MB min {min(flat):.0f} max {max(flat):.0f} "
          f"first {samples[0]} last {samples[-1]}; jobs {total}, not done {not_done}", flush=True)


if __name__ == "__main__":
    main()
