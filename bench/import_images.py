"""Import the demo photos into a fresh database twice and time both runs.

    .venv/bin/python bench/import_images.py [--database-url URL] [--source DIR]

The first run imports every valid photo; the second must import zero (all duplicates).
Uses a throw-away SQLite file, or drops and re-creates the given PostgreSQL database, and a\nthrow-away MEDIA_ROOT.
"""

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def manage(env, *args):
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return time.perf_counter() - started, result.stdout


def recreate_postgres_database(url: str) -> None:
    """Start from an empty database so the first run really imports everything."""
    import dj_database_url
    import psycopg2

    config = dj_database_url.parse(url)
    connection = psycopg2.connect(
        dbname="postgres", user=config["USER"], password=config["PASSWORD"], host=config["HOST"], port=config["PORT"]
    )
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{config["NAME"]}"')
        cursor.execute(f'CREATE DATABASE "{config["NAME"]}"')
    connection.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data" / "coffee-or-not")
    args = parser.parse_args()
    if not args.source.is_dir():
        sys.exit(f"No photos at {args.source}; pass --source FOLDER.")
    with tempfile.TemporaryDirectory() as scratch:
        env = {
            **os.environ,
            "DATABASE_URL": args.database_url or f"sqlite:///{scratch}/bench.sqlite3",
            "MEDIA_ROOT": f"{scratch}/media",
        }
        if args.database_url:
            recreate_postgres_database(args.database_url)
        manage(env, "migrate", "--noinput")
        dataset = "bench-import"
        first_seconds, first = manage(env, "import_images", str(args.source), "--dataset", dataset, "--no-progress")
        second_seconds, second = manage(env, "import_images", str(args.source), "--dataset", dataset, "--no-progress")
    engine = (args.database_url or "sqlite").split(":")[0]
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    for name, seconds, output in (("first run", first_seconds, first), ("second run", second_seconds, second)):
        summary = re.search(r"\d+ imported, \d+ duplicates skipped, \d+ rejected\.", output).group(0)
        print(f"{engine:10} {name:10} {seconds:6.2f} s (process start included)  {summary}")


if __name__ == "__main__":
    main()
