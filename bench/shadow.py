"""What shadow mode costs, side by side in one run: the same system without and with a version in
shadow, alternating (fresh web server and queue cluster for each pass, so each pass's worker memory
is its own).

    .venv/bin/python bench/shadow.py [--rounds 2] [--requests 100] [--seconds 15] [--clients 8] [--skip-prepare]

Needs PostgreSQL (BENCH_SHADOW_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/coffeeclassifier_bench_shadow,
dropped and re-created) and Redis (BENCH_SHADOW_REDIS_URL, default redis://127.0.0.1:6379/13, flushed).
Prepares a dataset from every 5th demo photo, trains efficientnet_lite0 (activated: the default
model) and mobilenet_v2 (the version put in shadow). For each pass it reports, with the Redis broker
and gunicorn (2 processes × 8 threads) + qcluster (2 workers), as bench/serve.py does:
- the client's latency at 1 client (POST ?wait, p50 and p99) and at `--clients` (p50, answers per second);
- the workers' CPU time per job over both phases (their /proc times over the jobs answered);
- each worker's resident memory after the pass;
- from the jobs: mean decode + inference of the answer, and mean shadow_ms, with the share of jobs
  that got a shadow answer and the agreement rate.
The shadow runs in the job's task, after the answer is written and its sender woken.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import serve  # after the path: run as a script

DATABASE_URL = os.environ.get(
    "BENCH_SHADOW_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/coffeeclassifier_bench_shadow"
)
REDIS_URL = os.environ.get("BENCH_SHADOW_REDIS_URL", "redis://127.0.0.1:6379/13")
SCRATCH = Path(os.environ.get("BENCH_SHADOW_SCRATCH", "/tmp/coffeeclassifier-bench-shadow"))
PORT = 8111
ACTIVE_BACKBONE, SHADOW_BACKBONE = "efficientnet_lite0", "mobilenet_v2"


PASSES = ("none", "shadow")


def env() -> dict:
    return serve.base_env(DATABASE_URL=DATABASE_URL, REDIS_URL=REDIS_URL, MEDIA_ROOT=str(SCRATCH / "media"),
                          ML_CACHE_DIR=str(SCRATCH / "cache"))


def manage(*args: str) -> str:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env(), check=True,
                          capture_output=True, text=True).stdout


def django(code: str) -> str:
    """What `code` prints, run by `manage.py shell` on the bench database."""
    return manage("shell", "-c", code).strip().splitlines()[-1]


def photo_folder() -> Path:
    """Every 5th demo photo of each label, linked into a folder of its own."""
    folder = SCRATCH / "photos"
    for label_dir in sorted(serve.SOURCE.iterdir()):
        if label_dir.is_dir():
            (folder / label_dir.name).mkdir(parents=True, exist_ok=True)
            for path in sorted(label_dir.glob("*.jpg"))[::5]:
                link = folder / label_dir.name / path.name
                if not link.exists():
                    link.symlink_to(path)
    return folder


def prepare() -> None:
    from bench.import_images import recreate_postgres_database

    recreate_postgres_database(DATABASE_URL)
    manage("migrate", "--noinput")
    manage("import_images", str(photo_folder()), "--dataset", "bench", "--no-progress")
    manage("train", "--dataset", "bench", "--backbone", ACTIVE_BACKBONE, "--activate", "--no-progress")
    manage("train", "--dataset", "bench", "--backbone", SHADOW_BACKBONE, "--no-progress")


def shadow_set(on: bool) -> None:
    """No version in shadow, then, if `on`, the bench's second version in shadow."""
    django("from classifier.models import ModelVersion as V; V.objects.update(is_shadow=False); print('ok')")
    if on:
        django("from classifier.models import ModelVersion as V; from classifier.services.shadow import "
               f"model_version_shadow_start as s; s(version=V.objects.get(dataset__slug='bench', "
               f"backbone='{SHADOW_BACKBONE}')); print('ok')")


def jobs_summary(since_pk_count: int) -> dict:
    """Means over the jobs answered after the first `since_pk_count` (by queue time)."""
    code = (
        "import json; from django.db.models import Avg, Count, F, Q; from classifier.models import PredictionJob as J;"
        f"ids = J.objects.order_by('queued_at').values_list('pk', flat=True)[{since_pk_count}:];"
        "q = J.objects.filter(pk__in=list(ids), status='done');"
        "print(json.dumps(q.aggregate(n=Count('pk'), shadowed=Count('pk', filter=~Q(shadow_label='')),"
        "agreed=Count('pk', filter=Q(label=F('shadow_label'))), pre=Avg('preprocess_ms'), inf=Avg('inference_ms'),"
        "shadow=Avg('shadow_ms'))))"
    )
    return json.loads(django(code))


def jobs_count() -> int:
    return int(django("from classifier.models import PredictionJob as J; print(J.objects.count())"))


def loaded(load: serve.Load, clients: int, seconds: float) -> dict:
    """p50 and answers per second at `clients` sending for `seconds`."""
    times, lock = [], threading.Lock()
    stop = time.monotonic() + seconds

    def client(offset):
        session, index = requests.Session(), offset
        while time.monotonic() < stop:
            started = time.perf_counter()
            ok = load.call(session, load.photos[index % len(load.photos)])
            with lock:
                times.append(((time.perf_counter() - started) * 1000, ok))
            index += clients

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ok = [ms for ms, good in times if good]
    return {"p50": statistics.median(ok), "per_second": len(ok) / (time.perf_counter() - started),
            "failed": len(times) - len(ok)}


def one_pass(name: str, photos: list[bytes], args) -> dict:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    before = jobs_count()
    with serve.gunicorn(PORT, env(), workers=2, threads=8) as _web, serve.process(
        [sys.executable, "manage.py", "qcluster"], env()
    ) as cluster:
        base = f"http://127.0.0.1:{PORT}"
        serve.wait_ready(f"{base}/healthz")
        load = serve.Load(serve.system_call(base, one_request=True), photos)
        load.latency(20)  # warm-up: the workers load their models
        workers = serve.cluster_worker_pids(cluster.pid)
        warm = jobs_count()
        cpu_before = serve.cpu_seconds(workers)
        latency = load.latency(args.requests)
        busy = loaded(load, args.clients, args.seconds)
        time.sleep(2)  # the last shadow answers
        cpu = serve.cpu_seconds(workers) - cpu_before
        answered = jobs_count() - warm
        rss = serve.rss_mb(workers)
    jobs = jobs_summary(warm)
    row = {"pass": name, "p50": latency["p50"], "p99": latency["p99"], "failed": latency["failed"] + busy["failed"],
           "busy_p50": busy["p50"], "per_second": busy["per_second"], "cpu_ms": cpu * 1000 / max(answered, 1),
           "rss": rss, "jobs": jobs, "warm_up_jobs": warm - before}
    print(f"{name:9} 1 client p50 {row['p50']:6.1f} ms p99 {row['p99']:6.1f} ms | {args.clients} clients p50 "
          f"{row['busy_p50']:6.1f} ms {row['per_second']:5.1f}/s | worker CPU {row['cpu_ms']:5.1f} ms/job | "
          f"worker RSS MB {[round(m) for m in rss]} | decode {jobs['pre'] or 0:.1f} + inference {jobs['inf'] or 0:.1f}"
          f" ms, shadow {jobs['shadow'] or 0:.1f} ms on {jobs['shadowed']}/{jobs['n']} jobs, agreed {jobs['agreed']}"
          f" | failed {row['failed']}", flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--skip-prepare", action="store_true", help="Reuse the database and models of the last run.")
    args = parser.parse_args()
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}", flush=True)
    if args.skip_prepare:
        manage("migrate", "--noinput")
    else:
        prepare()
    photos = [path.read_bytes() for path in sorted(photo_folder().glob("*/*.jpg"))[::3]]
    rows = {name: [] for name in PASSES}
    for _ in range(args.rounds):
        for name, passes in rows.items():
            shadow_set(name != "none")
            passes.append(one_pass(name, photos, args))
    shadow_set(False)

    def median_of(name, key):
        return statistics.median(row[key] for row in rows[name])

    for name in PASSES[1:]:
        cpu = median_of(name, "cpu_ms") / median_of("none", "cpu_ms")
        p50 = median_of(name, "p50") / median_of("none", "p50") - 1
        busy = median_of(name, "busy_p50") / median_of("none", "busy_p50") - 1
        rss = statistics.median(max(row["rss"]) for row in rows[name]) - statistics.median(
            max(row["rss"]) for row in rows["none"])
        print(f"{name} / none (medians of {args.rounds} rounds): worker CPU per job ×{cpu:.2f} (goal "
              f"≤ 1.8), worker RSS {rss:+.0f} MB (goal ≤ 60), 1-client p50 {p50:+.0%} (goal ≤ +20 %), "
              f"{args.clients}-client p50 {busy:+.0%}", flush=True)
    print(f"load average now {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
