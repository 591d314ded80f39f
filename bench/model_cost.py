"""What a backbone costs a prediction worker: time per photo (decode + LiteRT invoke) and memory.

    KERAS_HOME=../shared/keras .venv/bin/python bench/model_cost.py [--backbones mobilenet_v2,efficientnet_lite0+mobilenet_v2]

For each backbone, trains a version on a few demo photos with `model_train` (the head's weights
do not change the cost) under var/model-cost/, then, in one fresh process per backbone (no
TensorFlow loaded), builds the Predictor a worker builds (one interpreter; of 1 thread and, for
the time, of 2) and reads:
- time per photo: `Predictor.predict` on each demo photo (decode, EXIF, RGB, resize, invoke),
  p50 over --photos photos, at 1 thread and at 2, the backbones interleaved photo by photo;
- RSS: VmRSS of that process after 20 predictions with one 1-thread interpreter (Django not
  loaded: a worker adds its Django and django-q2, the same for every backbone), and the .tflite size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MEASURE = r"""
import json, re, statistics, sys, time
from pathlib import Path
from classifier.ml.predictor import Predictor

directories, files, thread_counts = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
predictors = {(name, threads): Predictor(Path(d), num_threads=threads)
              for name, d in directories.items() for threads in thread_counts}
photos = [Path(f).read_bytes() for f in files]
times = {key: [] for key in predictors}
for data in photos[:5]:
    for predictor in predictors.values():
        predictor.predict(data)  # warm-up
for data in photos:
    for key, predictor in predictors.items():
        started = time.perf_counter()
        predictor.predict(data)
        times[key].append((time.perf_counter() - started) * 1000)
rss = int(re.search(r"VmRSS:\s+(\d+)", open("/proc/self/status").read())[1]) / 1024
print(json.dumps({f"{name} {threads}": statistics.median(values) for (name, threads), values in times.items()}
                 | {"rss_mb": rss}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data" / "coffee-or-not")
    parser.add_argument("--backbones", default="mobilenet_v2,efficientnet_lite0+mobilenet_v2")
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "model-cost")
    args = parser.parse_args()
    os.environ.setdefault("KERAS_HOME", str(ROOT.parent / "shared" / "keras"))
    from classifier.ml.embeddings import Example
    from classifier.ml.train import TrainSettings, model_train

    files = sorted(args.source.glob("*/*.jpg"))
    chosen = files[:: max(1, len(files) // 40)][:40]
    examples = [
        Example(key=hashlib.sha256(f.read_bytes()).hexdigest(), read=f.read_bytes,
                label=int(f.parent.name != "coffee"), split=("train", "train", "val")[i % 3])
        for i, f in enumerate(chosen)
    ]
    directories = {}
    for backbone in args.backbones.split(","):
        directory = args.work / backbone
        if not (directory / "model.tflite").is_file():
            model_train(examples=examples, class_names=["coffee", "not_coffee"],
                        settings=TrainSettings(backbone=backbone, epochs=50), cache_root=args.work / "cache",
                        directory=directory, metadata={})
        directories[backbone] = str(directory)
    photos = [str(f) for f in files[1 :: max(1, len(files) // args.photos)][: args.photos]]
    memory = {}
    for backbone, directory in directories.items():  # memory: one backbone, one interpreter, per fresh process
        run = subprocess.run(
            [sys.executable, "-c", MEASURE, json.dumps({backbone: directory}), json.dumps(photos[:20]), "[1]"],
            capture_output=True, text=True, check=True, cwd=ROOT,
        )
        memory[backbone] = json.loads(run.stdout.strip().splitlines()[-1])["rss_mb"]
    run = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(directories), json.dumps(photos), "[1, 2]"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    times = json.loads(run.stdout.strip().splitlines()[-1])
    first = next(iter(directories))
    print(f"{len(photos)} photos, time per photo = decode + invoke (p50), interleaved; RSS of a fresh process "
          "holding one Predictor of one thread")
    print("| backbone | .tflite | 1 thread | 2 threads | × " + first + " (1 / 2 threads) | RSS |\n|---|---|---|---|---|---|")
    for backbone, directory in directories.items():
        size = (Path(directory) / "model.tflite").stat().st_size / 1e6
        one, two = times[f"{backbone} 1"], times[f"{backbone} 2"]
        print(f"| {backbone} | {size:.1f} MB | {one:.2f} ms | {two:.2f} ms | {one / times[f'{first} 1']:.2f} / "
              f"{two / times[f'{first} 2']:.2f} | {memory[backbone]:.0f} MB |")


if __name__ == "__main__":
    main()
