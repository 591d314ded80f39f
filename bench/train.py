"""Training figures on the demo photos: cold training, retrain after adding 50 photos, accuracy.

    make install && .venv/bin/python bench/train.py [--backbones mobilenet_v2,mobilenet_v2_035,mobilenet_025]

Each figure runs `manage.py train` as a user would, in a fresh process (TensorFlow import and
TFLite export included), on a throw-away SQLite database, MEDIA_ROOT and ML cache:
- cold: all 738 photos, standard split (the stable 70/15/15 the import assigns), empty cache;
- retrain: 688 photos trained, then 50 more imported, then a second training (warm cache);
- recipe: 5-fold cross-validation over all photos of plain logistic regression on frozen
  embeddings (no augmentation, threshold 0.5) against this project's head (flip augmentation,
  L2 chosen on an inner validation split, threshold chosen on it), from the cached embeddings.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run(env, *args) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                            check=False)
    if result.returncode:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return time.perf_counter() - started, result.stdout


def environment(scratch: Path, name: str) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{scratch / name}.sqlite3",
        "MEDIA_ROOT": str(scratch / name / "media"),
        "ML_CACHE_DIR": str(scratch / name / "cache"),
    }
    run(env, "migrate", "--noinput")
    return env


def version_metrics(env, number: int) -> dict:
    code = (
        "from classifier.models import ModelVersion; import json;"
        f"v = ModelVersion.objects.get(dataset__slug='bench', number={number});"
        "print(json.dumps({'metrics': v.metrics, 'seconds': v.training_seconds, 'threshold': v.threshold}))"
    )
    _, out = run(env, "shell", "-c", code)
    return json.loads(out.strip().splitlines()[-1])


def linked_folder(scratch: Path, name: str, files: list[Path], source: Path) -> Path:
    folder = scratch / name
    for file in files:
        target = folder / file.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(file)
    return folder


def cross_validation(cache_dir: Path, source: Path, folds: int = 5) -> dict:
    """Plain logistic regression against this project's recipe, on the same cached embeddings."""
    import hashlib

    from classifier.ml import metrics, preprocess
    from classifier.ml.embeddings import EmbeddingCache
    from classifier.ml.head import head_fit, log_loss

    cache = EmbeddingCache(cache_dir, f"mobilenet_v2-224-p{preprocess.VERSION}")
    files = sorted(source.glob("*/*.jpg"))
    vectors = np.stack([cache.get(hashlib.sha256(f.read_bytes()).hexdigest()) for f in files])
    labels = np.array([0 if f.parent.name == "coffee" else 1 for f in files])
    order = np.random.default_rng(0).permutation(len(files))
    plain, recipe = [], []
    for test in np.array_split(order, folds):
        rest = np.setdiff1d(order, test)
        inner_val, train = rest[: len(rest) // 6], rest[len(rest) // 6 :]
        head = head_fit(vectors[rest, 0], labels[rest], classes=2, l2=1e-4)
        plain.append((head.probabilities(vectors[test, 0]).argmax(1) == labels[test]).mean())
        x = np.concatenate([vectors[train, 0], vectors[train, 1]])
        y = np.concatenate([labels[train], labels[train]])
        candidates = [head_fit(x, y, classes=2, l2=l2) for l2 in (1e-4, 1e-3, 1e-2, 3e-2)]
        best = min(candidates, key=lambda h: log_loss(h.probabilities(vectors[inner_val, 0]), labels[inner_val]))
        threshold = metrics.threshold_choose(best.probabilities(vectors[inner_val, 0]), labels[inner_val])
        decided = metrics.decide(best.probabilities(vectors[test, 0]), threshold)
        recipe.append((decided == labels[test]).mean())
    return {"plain": (float(np.mean(plain)), float(np.std(plain))), "recipe": (float(np.mean(recipe)), float(np.std(recipe)))}


def main():
    from classifier.ml.backbones import DEFAULT_BACKBONE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data" / "coffee-or-not")
    parser.add_argument("--backbones", default="mobilenet_v2,mobilenet_v2_035,mobilenet_025")
    args = parser.parse_args()
    if not args.source.is_dir():
        sys.exit(f"No photos at {args.source}; pass --source FOLDER.")
    os.environ.setdefault("KERAS_HOME", str(ROOT.parent / "shared" / "keras"))
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    files = sorted(args.source.glob("*/*.jpg"))
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        for backbone in args.backbones.split(","):
            env = environment(scratch, f"cold-{backbone}")
            run(env, "import_images", str(args.source), "--dataset", "bench", "--no-progress")
            seconds, out = run(env, "train", "--dataset", "bench", "--backbone", backbone, "--no-progress")
            result = version_metrics(env, 1)
            m = result["metrics"]
            print(
                f"cold   {backbone:17} {seconds:6.1f} s wall ({result['seconds']:.1f} s in training)  "
                f"test {m['test']['accuracy']:.2%} (n={m['test']['count']}, AUC {m['test']['roc_auc']})  "
                f"val {m['val']['accuracy']:.2%}  threshold {result['threshold']}  l2 {m['head']['l2']}  "
                f"tflite {m['tflite_bytes'] / 1e6:.2f} MB  parity {m['parity_max_abs_diff']:.1e}"
            )
            if backbone == "mobilenet_v2":
                cv = cross_validation(scratch / f"cold-{backbone}" / "cache", args.source)

        held_out = files[::15][:50]
        first = [f for f in files if f not in held_out]
        env = environment(scratch, "retrain")
        run(env, "import_images", str(linked_folder(scratch, "first", first, args.source)), "--dataset", "bench",
            "--no-progress")
        run(env, "train", "--dataset", "bench", "--no-progress")
        _, imported = run(env, "import_images", str(linked_folder(scratch, "more", held_out, args.source)),
                          "--dataset", "bench", "--no-progress")
        seconds, _ = run(env, "train", "--dataset", "bench", "--no-progress")
        result = version_metrics(env, 2)
        added = re.search(r"(\d+) imported", imported).group(1)
        print(
            f"retrain {DEFAULT_BACKBONE} (the default) after {added} new photos: "
            f"{seconds:.1f} s wall ({result['seconds']:.1f} s in training), "
            f"{result['metrics']['embeddings_computed']} embeddings computed, test {result['metrics']['test']['accuracy']:.2%}"
        )
    if "cv" in locals():
        print(
            f"5-fold CV, mobilenet_v2 embeddings, {len(files)} photos: plain logistic regression "
            f"{cv['plain'][0]:.2%} ± {cv['plain'][1]:.2%}; this recipe {cv['recipe'][0]:.2%} ± {cv['recipe'][1]:.2%} "
            f"({(cv['recipe'][0] - cv['plain'][0]) * 100:+.2f} points)"
        )


if __name__ == "__main__":
    main()
