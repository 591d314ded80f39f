"""Cross-validated accuracy of model configurations, side by side with the plain baseline.

    KERAS_HOME=../shared/keras .venv/bin/python bench/accuracy.py [--folds 5] [--repeats 1] [--configs a,b]

Stratified k-fold cross-validation over every photo in --source (default ../shared/data/coffee-or-not),
near-duplicates kept in one fold: photos whose 8×8 difference hashes differ in at most
NEAR_DUPLICATE_BITS bits are joined (union-find) into one cluster, and clusters, not photos, are
dealt to folds, per label. Each configuration trains on the other folds exactly as `model_train`
does (`classifier.ml.train.head_train`: L2, temperature, threshold and the "unsure" confidence
chosen on an inner validation split of a sixth of them) and is scored on the held-out fold. The
plain baseline is frozen MobileNetV2 1.0 embeddings + logistic regression (L2 1e-4) on all of the
other folds, no augmentation, threshold 0.5.

Reported per configuration, over the out-of-fold answers: overall, per label, per group (KINDS.tsv),
hard negatives (HARD_NEGATIVE_GROUPS), coffee other than latte art; expected calibration error of
the head's own probabilities and after temperature scaling; with "unsure" on, the share answered
(coverage) and the accuracy of those answers. Embeddings are cached by photo sha256 under --cache;
no Django is needed.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from classifier.ml import backbones, calibration, metrics
from classifier.ml.crossval import folds_assign
from classifier.ml.embeddings import Example
from classifier.ml.head import head_fit, softmax
from classifier.ml.train import TrainSettings, embeddings_all, head_train

NEAR_DUPLICATE_BITS = 5
# Every not-coffee group of KINDS.tsv that shows a drink, a cup, a glass, a bottle or a bowl.
HARD_NEGATIVE_GROUPS = (
    "tea_cup", "tea_glass", "tea_iced", "tea_teapot", "teapot", "gaiwan", "matcha", "milk_tea", "hot_chocolate",
    "milkshake", "smoothie", "juice", "soda", "beer", "wine", "cocktail", "milk", "water", "empty_cup", "soup",
    "cereal", "bottle",
)
LATTE_ART = "latte_art"
COFFEE, NOT_COFFEE = 0, 1  # class indices: the folders' names in sorted order
BASELINE_L2 = 1e-4


@dataclass(frozen=True)
class Config:
    name: str
    backbone: str  # as classifier.ml.backbones.backbone_get takes it
    augment: int = 0
    flip: bool = True
    flip_at_test: bool = False  # average the probabilities of the photo and its mirror image
    plain: bool = False  # the baseline: logistic regression, no validation, no calibration
    fine_tune_epochs: int = 0  # at most this many epochs for the first component's top (FINE_TUNE_CUT)
    fine_tune_learning_rate: float = 1e-4
    unsure_precision: float = TrainSettings.unsure_precision
    choose_threshold: bool = TrainSettings.choose_threshold


CONFIGS = {
    config.name: config
    for config in (
        Config("baseline", "mobilenet_v2", flip=False, plain=True),
        Config("mobilenet_v2", "mobilenet_v2"),
        Config("mobilenet_v2_035+mobilenet_v2", "mobilenet_v2_035+mobilenet_v2"),
        Config("efficientnet_lite0", "efficientnet_lite0"),
        Config("efficientnet_lite0_288", "efficientnet_lite0_288"),
        Config("efficientnet_lite0+mobilenet_v2", "efficientnet_lite0+mobilenet_v2"),
        Config("efficientnet_lite0 (unsure at 99.5 % on validation)", "efficientnet_lite0", unsure_precision=0.995),
        Config("efficientnet_lite0 (threshold chosen on validation)", "efficientnet_lite0", choose_threshold=True),
        Config("efficientnet_lite0 (4 crops)", "efficientnet_lite0", augment=4),
        Config("efficientnet_lite0+mobilenet_v2 (4 crops)", "efficientnet_lite0+mobilenet_v2", augment=4),
        Config("efficientnet_lite0+mobilenet_v2 (flip at test)", "efficientnet_lite0+mobilenet_v2", flip_at_test=True),
        Config("efficientnet_lite0 (top fine-tuned)", "efficientnet_lite0", fine_tune_epochs=6),
        Config("efficientnet_lite0 (top fine-tuned at 1e-3)", "efficientnet_lite0", fine_tune_epochs=6,
               fine_tune_learning_rate=1e-3),
    )
}
# Fine-tuning: the activations entering Lite0's last block are cached; that block and the top
# convolution train (BatchNorm statistics stay), keras-io style: a frozen-probe head to start from,
# a low learning rate (Adam), the epoch with the lowest validation loss kept.
FINE_TUNE_CUT = {"efficientnet_lite0": "block14_add", "mobilenet_v2": "block_15_add"}
FINE_TUNE_BATCH = 32


def difference_hash(data: bytes) -> int:
    """64-bit dHash of the upright greyscale photo (as dataset.imaging computes it)."""
    from classifier.ml import preprocess

    small = preprocess.decode(data).convert("L").resize((9, 8), 1)  # LANCZOS
    pixels = np.asarray(small, dtype=np.int16)
    bits = (pixels[:, :-1] > pixels[:, 1:]).flatten()
    return int("".join("1" if bit else "0" for bit in bits), 2)


def near_duplicate_clusters(hashes: list[int], max_bits: int) -> np.ndarray:
    """Cluster index per photo: union-find over every pair within `max_bits` Hamming distance."""
    values = np.array(hashes, dtype=np.uint64)
    parent = list(range(len(values)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(values)):
        distance = np.array([int(x).bit_count() for x in values[i + 1 :] ^ values[i]], dtype=int)
        for j in np.flatnonzero(distance <= max_bits) + i + 1:
            parent[root(int(j))] = root(i)
    roots = [root(i) for i in range(len(values))]
    return np.unique(roots, return_inverse=True)[1]


def photos(source: Path) -> tuple[list[Path], list[str], np.ndarray, list[str]]:
    files = sorted(source.glob("*/*.jpg"))
    kinds = {}
    with (source / "KINDS.tsv").open() as table:
        for row in csv.DictReader(table, delimiter="\t"):
            kinds[row["file"]] = row["kind"]
    keys = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    labels = np.array([COFFEE if f.parent.name == "coffee" else NOT_COFFEE for f in files])
    groups = [kinds.get(f"{f.parent.name}/{f.name}", "") for f in files]
    return files, keys, labels, groups


def embeddings(backbone_name: str, examples: list[Example], cache: Path, augment: int) -> np.ndarray:
    """(photos, 2 + augment views, features), from the cache or computed with TensorFlow."""
    from classifier.ml.model import build_bases

    backbone = backbones.backbone_get(backbone_name)
    return embeddings_all(examples, backbone=backbone, bases=build_bases(backbone), cache_root=cache,
                          augment=augment)[0]


def activations(backbone_name: str, examples: list[Example], cache: Path):
    """(photos, 2 plain views, h, w, c) float16 entering the top FINE_TUNE_CUT of `backbone_name`,
    and that top as a Keras model (its own copy of the weights)."""
    import keras

    from classifier.ml.embeddings import EmbeddingCache, embeddings_compute
    from classifier.ml.model import image_input, normalise
    from classifier.ml.train import cache_namespace

    backbone = backbones.backbone_get(backbone_name)
    base = backbones.build_base(backbone)
    cut = base.get_layer(FINE_TUNE_CUT[backbone.name]).output
    inputs = image_input(backbone)
    bottom = keras.Model(inputs, keras.Model(base.input, cut)(normalise(backbone, inputs)))
    top = keras.Model(cut, base.output)
    values, _ = embeddings_compute(
        examples, embedder=bottom, input_size=backbone.input_size,
        cache=EmbeddingCache(cache, f"{cache_namespace(backbone)}-{FINE_TUNE_CUT[backbone.name]}"),
    )
    return values.astype(np.float16), top


def fine_tuned(top_template, inputs: np.ndarray, others: np.ndarray, labels: np.ndarray, train: np.ndarray,
               val: np.ndarray, start, epochs: int, learning_rate: float) -> np.ndarray:
    """Pooled features (photos, views, c) of a copy of `top_template` fine-tuned on the `train`
    photos' plain views, beside `others` (frozen features) under one linear head started from `start`;
    the epoch with the lowest validation log-loss is kept."""
    import keras

    top = keras.models.clone_model(top_template)
    top.set_weights(top_template.get_weights())
    for layer in top.layers:  # the template's layers were frozen with their backbone
        # BatchNorm stays frozen, so in inference mode: the ImageNet statistics stay
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
    cached = keras.Input(inputs.shape[2:])
    pooled = keras.layers.GlobalAveragePooling2D()(top(cached))
    model_inputs, features = [cached], pooled
    if others.shape[-1]:
        frozen = keras.Input(others.shape[2:])
        model_inputs, features = [cached, frozen], keras.layers.Concatenate()([pooled, frozen])
    dense = keras.layers.Dense(2, kernel_regularizer=keras.regularizers.L2(start.l2 / 2))
    model = keras.Model(model_inputs, dense(features))
    dense.set_weights([start.kernel, start.bias])
    pooler = keras.Model(cached, pooled)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def fed(photos, views):
        x = [np.concatenate([inputs[photos, v] for v in views]).astype(np.float32)]
        return x + [np.concatenate([others[photos, v] for v in views])] if others.shape[-1] else x

    x, y = fed(train, [0, 1]), np.tile(labels[train], 2)
    weights = (len(y) / (2 * np.bincount(y, minlength=2)))[y]
    best, best_weights = np.inf, top.get_weights()
    for _ in range(epochs):
        model.fit(x, y, sample_weight=weights, batch_size=FINE_TUNE_BATCH, epochs=1, verbose=0, shuffle=True)
        logits = model.predict(fed(val, [0]), batch_size=256, verbose=0)
        loss = float(np.mean(keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(
            labels[val], logits, from_logits=True))))
        print(f"  fine-tuning: validation log-loss {loss:.4f}, {len(top.trainable_weights)} tensors trained",
              file=sys.stderr)
        if loss < best:
            best, best_weights = loss, top.get_weights()
    top.set_weights(best_weights)
    n, v = inputs.shape[:2]
    flat = pooler.predict(inputs.reshape(n * v, *inputs.shape[2:]).astype(np.float32), batch_size=256, verbose=0)
    return flat.reshape(n, v, -1)


def split_inner(labels: np.ndarray, clusters: np.ndarray, seed: int) -> np.ndarray:
    """True for the photos of an inner validation split: one sixth, whole clusters, per label."""
    return folds_assign(labels, clusters, folds=6, seed=seed) == 0


def cross_validate(config: Config, vectors: np.ndarray, labels: np.ndarray, fold_of: np.ndarray,
                   clusters: np.ndarray, seed: int, tune=None) -> dict:
    """Out-of-fold probabilities (raw and calibrated), decisions and answered flags of one config.
    With `tune` (the first component's activations and top, `activations`), that component's
    features are fine-tuned per fold on the fold's training photos."""
    n = len(labels)
    raw, calibrated = np.zeros((n, 2)), np.zeros((n, 2))
    predicted, answered = np.zeros(n, int), np.ones(n, bool)
    temperatures, thresholds, unsure = [], [], []
    views = [0, *([1] if config.flip else []), *range(2, 2 + config.augment)]
    for fold in range(fold_of.max() + 1):
        test, rest = np.flatnonzero(fold_of == fold), np.flatnonzero(fold_of != fold)

        if config.plain:
            head = head_fit(vectors[rest, 0], labels[rest], classes=2, l2=BASELINE_L2)
            raw[test] = calibrated[test] = head.probabilities(vectors[test, 0])
            predicted[test] = metrics.decide(raw[test], 0.5)
            continue
        inner = split_inner(labels[rest], clusters[rest], seed + fold)
        train, val = rest[~inner], rest[inner]
        settings = TrainSettings(backbone=config.backbone, flip=config.flip, augment=config.augment,
                                 unsure_precision=config.unsure_precision, choose_threshold=config.choose_threshold)
        fold_vectors = vectors
        if tune is not None:
            start = head_train(np.concatenate([vectors[train, v] for v in views]), np.tile(labels[train], len(views)),
                               vectors[val, 0], labels[val], classes=2, settings=settings)
            start_head = calibration.head_scaled(start.head, 1 / start.temperature)
            inputs, top = tune
            width = top.output.shape[-1]
            tuned = fine_tuned(top, inputs, vectors[:, :, width:], labels, train, val,
                               Start(start_head.kernel, start_head.bias, start.l2), config.fine_tune_epochs,
                               config.fine_tune_learning_rate)
            fold_vectors = np.concatenate([tuned, vectors[:, :, width:]], axis=2)
        fitted = head_train(
            np.concatenate([fold_vectors[train, view] for view in views]), np.tile(labels[train], len(views)),
            fold_vectors[val, 0], labels[val], classes=2, settings=settings,
        )
        tested = fold_vectors[test][:, [0, 1] if config.flip_at_test else [0]]
        calibrated[test] = probe(fitted.head, tested, 1.0)
        raw[test] = probe(fitted.head, tested, fitted.temperature)
        predicted[test] = metrics.decide(calibrated[test], fitted.threshold)
        answered[test] = metrics.answered(calibrated[test], fitted.threshold, fitted.unsure_below)
        temperatures.append(fitted.temperature)
        thresholds.append(fitted.threshold)
        unsure.append(fitted.unsure_below)
    return {"raw": raw, "calibrated": calibrated, "predicted": predicted, "answered": answered,
            "temperatures": temperatures, "thresholds": thresholds, "unsure_below": unsure}


def probe(head, views: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities at the head's logits × temperature, averaged over the given views of each photo."""
    return np.mean([softmax(head.logits(views[:, view]) * temperature) for view in range(views.shape[1])], axis=0)


@dataclass(frozen=True)
class Start:
    kernel: np.ndarray
    bias: np.ndarray
    l2: float


def summary(run: dict, labels: np.ndarray, groups: list[str], plain: bool) -> dict:
    correct = run["predicted"] == labels
    groups_array = np.array(groups)
    hard = np.isin(groups_array, HARD_NEGATIVE_GROUPS) & (labels == NOT_COFFEE)
    varied = (labels == COFFEE) & (groups_array != LATTE_ART)
    answered = run["answered"]
    result = {
        "overall": correct.mean(),
        "coffee": correct[labels == COFFEE].mean(),
        "not_coffee": correct[labels == NOT_COFFEE].mean(),
        "hard_negatives": correct[hard].mean(),
        "coffee_not_latte_art": correct[varied].mean(),
        "auc": metrics.roc_auc(run["calibrated"][:, 1], labels == 1),
        "per_group": metrics.group_accuracy(correct, groups),
        "counts": {"photos": len(labels), "hard_negatives": int(hard.sum()), "coffee_not_latte_art": int(varied.sum())},
    }
    result["ece_before"] = ece_of(run["raw"], run["predicted"], labels)
    if not plain:
        result.update({
            "ece_after": ece_of(run["calibrated"], run["predicted"], labels),
            "coverage": answered.mean(),
            "answered_accuracy": correct[answered].mean() if answered.any() else float("nan"),
            "hard_negatives_answered_accuracy": correct[hard & answered].mean() if (hard & answered).any() else None,
            "best_coverage_at_99": best_coverage(run["calibrated"], run["predicted"], labels, 0.99),
            "temperature_median": float(np.median(run["temperatures"])),
            "unsure_below_median": float(np.median(run["unsure_below"])),
            "thresholds": run["thresholds"],
        })
    return result


def best_coverage(probabilities: np.ndarray, predicted: np.ndarray, labels: np.ndarray, precision: float) -> float:
    """The largest share of photos that, answered in order of confidence, are `precision` right:
    what the best cut, chosen knowing the held-out answers, would reach."""
    confidence = probabilities[np.arange(len(labels)), predicted]
    correct = (predicted == labels)[np.argsort(-confidence, kind="mergesort")]
    reached = np.flatnonzero(np.cumsum(correct) / np.arange(1, len(labels) + 1) >= precision)
    return float((reached[-1] + 1) / len(labels)) if len(reached) else 0.0


def ece_of(probabilities: np.ndarray, predicted: np.ndarray, labels: np.ndarray) -> float:
    """Expected calibration error of the probabilities of the classes each fold decided."""
    confidence = probabilities[np.arange(len(labels)), predicted]
    return calibration.calibration_error(confidence, predicted == labels)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data" / "coffee-or-not")
    parser.add_argument("--cache", type=Path, default=ROOT / "var" / "accuracy-cache")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1, help="Fold assignments (seeds) to average over.")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"Of: {', '.join(CONFIGS)}.")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for TensorFlow and NumPy.")
    parser.add_argument("--json", type=Path, help="Also write every figure to this file.")
    args = parser.parse_args()
    if not args.source.is_dir():
        sys.exit(f"No photos at {args.source}; pass --source FOLDER.")
    os.environ.setdefault("KERAS_HOME", str(ROOT.parent / "shared" / "keras"))
    chosen = [CONFIGS[name] for name in args.configs.split(",")]

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    started = time.perf_counter()
    files, keys, labels, groups = photos(args.source)
    examples = [Example(key=key, read=file.read_bytes, label=int(label), split="train")
                for file, key, label in zip(files, keys, labels)]
    clusters = near_duplicate_clusters([difference_hash(f.read_bytes()) for f in files], NEAR_DUPLICATE_BITS)
    print(f"{len(files)} photos, {clusters.max() + 1} near-duplicate clusters "
          f"(largest {np.bincount(clusters).max()}), {args.folds} folds × {args.repeats} repeats")
    vectors = {}
    for config in chosen:
        key = (config.backbone, config.augment)
        if key not in vectors:
            clock = time.perf_counter()
            vectors[key] = embeddings(config.backbone, examples, args.cache, config.augment)
            print(f"embeddings {config.backbone} +{config.augment} crops: {vectors[key].shape}, "
                  f"{time.perf_counter() - clock:.0f} s")
    results = {}
    for config in chosen:
        clock = time.perf_counter()
        tune = None
        if config.fine_tune_epochs:
            tune = activations(config.backbone.split("+")[0], examples, args.cache)
        runs = [cross_validate(config, vectors[(config.backbone, config.augment)], labels,
                               folds_assign(labels, clusters, folds=args.folds, seed=seed), clusters, seed, tune)
                for seed in range(args.repeats)]
        summaries = [summary(run, labels, groups, config.plain) for run in runs]
        results[config.name] = average(summaries)
        print(f"{config.name}: {time.perf_counter() - clock:.0f} s", file=sys.stderr)
    print(report(results, chosen, args, time.perf_counter() - started))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))


def average(summaries: list[dict]) -> dict:
    """The mean of every figure over the repeats (per-group accuracies too)."""
    result = {}
    for key, value in summaries[0].items():
        if isinstance(value, float | np.floating | int) and not isinstance(value, bool):
            result[key] = float(np.mean([s[key] for s in summaries if s[key] is not None]))
        elif key == "per_group":
            result[key] = {g: {"count": v["count"], "accuracy": float(np.mean([s[key][g]["accuracy"] for s in summaries]))}
                           for g, v in value.items()}
        else:
            result[key] = value
    return result


def report(results: dict, chosen: list[Config], args, seconds: float) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in subprocess.run(
        ["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines() if line.startswith("Model name")),
        platform.processor())
    out = io.StringIO()
    base = results.get("baseline")
    out.write(f"machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}; "
              f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; {seconds:.0f} s\n")
    out.write(f"command: bench/accuracy.py --folds {args.folds} --repeats {args.repeats} --threads {args.threads}\n\n")
    out.write("| configuration | overall | coffee | not coffee | hard negatives (Δ baseline) | coffee, not latte art "
              "| ROC AUC | ECE before → after | unsure below (median) | coverage | accuracy answered "
              "| best coverage at 99 % |\n")
    out.write("|---|---|---|---|---|---|---|---|---|---|---|---|\n")

    def pct(value):
        return "–" if value is None else f"{value:.1%}"

    for config in chosen:
        r = results[config.name]
        delta = f" ({(r['hard_negatives'] - base['hard_negatives']) * 100:+.1f})" if base and config.name != "baseline" else ""
        calibrated = "coverage" in r
        out.write(
            f"| {config.name} | {pct(r['overall'])} | {pct(r['coffee'])} | {pct(r['not_coffee'])} "
            f"| {pct(r['hard_negatives'])}{delta} | {pct(r['coffee_not_latte_art'])} | {r['auc']:.4f} "
            f"| {pct(r['ece_before'])} → {pct(r['ece_after']) if calibrated else '–'} "
            f"| {r['unsure_below_median']:.3f} | {pct(r['coverage'])} | {pct(r['answered_accuracy'])} "
            f"| {pct(r['best_coverage_at_99'])} |\n"
            if calibrated else
            f"| {config.name} | {pct(r['overall'])} | {pct(r['coffee'])} | {pct(r['not_coffee'])} "
            f"| {pct(r['hard_negatives'])}{delta} | {pct(r['coffee_not_latte_art'])} | {r['auc']:.4f} "
            f"| {pct(r['ece_before'])} | – | – | – | – |\n"
        )
    counts = next(iter(results.values()))["counts"]
    out.write(f"\n{counts['photos']} photos; hard negatives: {counts['hard_negatives']} "
              f"({', '.join(HARD_NEGATIVE_GROUPS)}); coffee other than latte art: {counts['coffee_not_latte_art']}\n\n")
    names = [config.name for config in chosen]
    out.write("| group | photos | " + " | ".join(names) + " |\n|---|---|" + "---|" * len(names) + "\n")
    first = results[names[0]]["per_group"]
    for group in sorted(first, key=lambda g: min(results[n]["per_group"][g]["accuracy"] for n in names)):
        out.write(f"| {group} | {first[group]['count']} | "
                  + " | ".join(pct(results[n]["per_group"][group]["accuracy"]) for n in names) + " |\n")
    return out.getvalue()


if __name__ == "__main__":
    main()
