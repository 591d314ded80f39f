"""classifier/ml on its own: metrics, the head, preprocessing parity, real training and export."""

import hashlib
import json

import numpy as np
import pytest

from classifier.ml import backbones, metrics, preprocess
from classifier.ml.embeddings import EmbeddingCache, Example
from classifier.ml.head import head_fit
from classifier.ml.predictor import Predictor
from classifier.ml.train import NotTrainable, TrainSettings, model_train, training_data_check
from coffeeclassifier import imaging
from tests.photos import encode, jpeg, photo


def test_roc_auc_matches_counting_pairs():
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(60), 1)  # many ties
    positives = rng.random(60) > 0.5
    pairs = [(p, n) for p in scores[positives] for n in scores[~positives]]
    expected = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    assert metrics.roc_auc(scores, positives) == pytest.approx(expected)
    assert metrics.roc_auc(scores, np.ones(60, bool)) is None


def test_threshold_stays_at_one_half_unless_validation_clearly_disagrees():
    labels = np.array([0] * 10 + [1] * 10)
    p1 = np.concatenate([np.linspace(0.0, 0.4, 10), np.linspace(0.6, 1.0, 10)])
    assert metrics.threshold_choose(np.stack([1 - p1, p1], 1), labels) == 0.5
    shifted = p1 * 0.5  # every positive sits in 0.30..0.50: 0.5 gets 9 of them wrong
    threshold = metrics.threshold_choose(np.stack([1 - shifted, shifted], 1), labels)
    assert 0.2 < threshold < 0.3
    assert (metrics.decide(np.stack([1 - shifted, shifted], 1), threshold) == labels).all()


def test_evaluate_counts_confusion_and_names_misclassified_photos():
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.7, 0.3]])
    labels = np.array([0, 0, 1, 1])
    result = metrics.evaluate(probabilities, labels, class_names=["coffee", "tea"], threshold=0.5, keys=list("abcd"))
    assert result["confusion"] == [[1, 1], [1, 1]]
    assert result["accuracy"] == 0.5
    assert [item["key"] for item in result["misclassified"]] == ["b", "d"]
    assert result["per_class"]["tea"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}


def test_head_learns_a_separable_problem_and_weights_rare_classes():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(-1, 0.5, (90, 8)), rng.normal(1, 0.5, (10, 8))]).astype(np.float32)
    y = np.array([0] * 90 + [1] * 10)
    head = head_fit(x, y, classes=2, l2=1e-3, steps=300)
    predicted = head.probabilities(x).argmax(1)
    assert (predicted[y == 1] == 1).mean() >= 0.9 and (predicted == y).mean() >= 0.95
    again = head_fit(x, y, classes=2, l2=1e-3, steps=300)
    assert np.array_equal(head.kernel, again.kernel)


def test_training_and_serving_see_the_same_pixels():
    """The one preprocessing path: what training embeds is what the predictor feeds."""
    data = encode(photo("astronaut").rotate(90, expand=True), "PNG")
    training_pixels = preprocess.model_input(data, 224)
    assert training_pixels.shape == (224, 224, 3) and training_pixels.dtype == np.uint8
    assert np.array_equal(preprocess.resize(imaging.decode(data, at_least=224), 224), training_pixels)


def test_a_large_jpeg_is_decoded_reduced_to_nearly_what_a_full_decode_gives():
    """A phone photo decodes at a fraction of its size for the model: both sides keep at least
    the model's input, turned by its EXIF, and what the model sees barely changes."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    data = encode(photo("coffee", size=(2000, 1600)), "JPEG", quality=90, exif=exif.tobytes())
    reduced, full = imaging.decode(data, at_least=224), imaging.decode(data)
    assert reduced.size == (400, 500) and full.size == (1600, 2000)  # 1/4: 1/8 would leave 200 px
    model_pixels = preprocess.model_input(data, 224)
    assert np.array_equal(model_pixels, preprocess.resize(reduced, 224))
    assert np.abs(model_pixels.astype(int) - preprocess.resize(full, 224)).mean() < 1.5
    # a photo with a side under twice the input decodes whole; so does every other format
    assert imaging.decode(jpeg("coffee", size=(600, 400)), at_least=224).size == (600, 400)
    assert imaging.decode(encode(photo("coffee", size=(2000, 1600)), "PNG"), at_least=224).size == (2000, 1600)


def test_missing_weights_name_the_file_and_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    backbone = backbones.backbone_get("efficientnet_b0")
    with pytest.raises(backbones.WeightsUnavailable) as error:
        backbones.build_base(backbone)
    message = str(error.value)
    assert "efficientnetb0_notop.h5" in message and str(tmp_path / "models") in message


def test_unknown_backbone_is_named():
    with pytest.raises(ValueError, match="Unknown backbone 'vgg99'; choose one of mobilenet_v2"):
        backbones.backbone_get("vgg99")


def examples_from(demo_photos, per_label: int) -> tuple[list[Example], list[str]]:
    class_names = sorted(demo_photos)
    examples = []
    for index, name in enumerate(class_names):
        for position, path in enumerate(demo_photos[name][::7][:per_label]):
            split = "train" if position < per_label * 0.6 else "val" if position < per_label * 0.8 else "test"
            data = path.read_bytes()
            examples.append(Example(key=hashlib.sha256(data).hexdigest(), read=path.read_bytes, label=index, split=split))
    return examples, class_names


def test_refusals_say_what_to_fix(demo_photos):
    examples, names = examples_from(demo_photos, 10)
    with pytest.raises(NotTrainable, match="at least 2 labels"):
        training_data_check([e for e in examples if e.label == 0], names[:1])
    with pytest.raises(NotTrainable, match="'not_coffee'.*no training photo"):
        training_data_check([e for e in examples if e.label == 0 or e.split != "train"], names)
    with pytest.raises(NotTrainable, match="validation split is empty"):
        training_data_check([e for e in examples if e.split != "val"], names)


def test_small_real_training_exports_a_model_that_answers_like_keras(demo_photos, keras_home, tmp_path):
    examples, class_names = examples_from(demo_photos, 20)
    cache_root = tmp_path / "cache"
    stages = []
    outcome = model_train(
        examples=examples, class_names=class_names, settings=TrainSettings(backbone="mobilenet_025"),
        cache_root=cache_root, directory=tmp_path / "v1", metadata={"version": 1},
        on_progress=lambda stage, fraction: stages.append(stage),
    )
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == ["embeddings", "head", "evaluation",
                                                                                   "export"]
    assert outcome.metrics["test"]["accuracy"] >= 0.75  # chance is 0.5
    assert outcome.metrics["parity_max_abs_diff"] <= 1e-3
    assert outcome.metrics["embeddings_computed"] == len(examples)
    metadata = json.loads((tmp_path / "v1" / "metadata.json").read_text())
    assert metadata["labels"] == class_names and metadata["backbone"] == "mobilenet_025"
    assert sorted(metadata["images"]["test"]) == sorted(e.key for e in examples if e.split == "test")
    assert (tmp_path / "v1" / "model.keras").stat().st_size > 0

    predictor = Predictor(tmp_path / "v1")
    coffee = predictor.predict(demo_photos["coffee"][3].read_bytes())  # not among the training photos (every 7th)
    assert coffee.label in class_names and abs(sum(coffee.probabilities.values()) - 1) < 1e-4
    assert coffee.cam.shape == (7, 7, 2)
    # the exact activation map: its spatial mean is the logit difference the probabilities come from
    logits = coffee.cam.mean(axis=(0, 1))
    softmax = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert np.allclose(softmax, [coffee.probabilities[name] for name in class_names], atol=1e-4)

    # a retrain with two more photos per label computes only their embeddings, reuses the template
    more, _ = examples_from(demo_photos, 22)
    again = model_train(
        examples=more, class_names=class_names, settings=TrainSettings(backbone="mobilenet_025"),
        cache_root=cache_root, directory=tmp_path / "v2", metadata={"version": 2},
    )
    assert again.metrics["embeddings_computed"] == len(more) - len(examples)
    assert again.metrics["parity_max_abs_diff"] <= 1e-3


def test_embedding_cache_round_trips_and_ignores_damaged_entries(tmp_path):
    cache = EmbeddingCache(tmp_path, "backbone-224-p1")
    vectors = np.arange(6, dtype=np.float32).reshape(2, 3)
    cache.put("ab" * 32, vectors)
    assert np.array_equal(cache.get("ab" * 32), vectors)
    cache.path("cd" * 32).parent.mkdir(parents=True)
    cache.path("cd" * 32).write_bytes(b"half a file")
    assert cache.get("cd" * 32) is None and cache.get("ef" * 32) is None


def test_predictor_reads_jpeg_bytes_like_training(keras_home, tmp_path, demo_photos):
    """Serving from bytes equals serving from the pixels training computed for the same bytes."""
    examples, class_names = examples_from(demo_photos, 10)
    model_train(
        examples=examples, class_names=class_names, settings=TrainSettings(backbone="mobilenet_025", epochs=50),
        cache_root=tmp_path / "cache", directory=tmp_path / "v", metadata={},
    )
    data = jpeg("coffee", size=(1200, 900))  # large enough to decode reduced
    reduced, whole = preprocess.model_input(data, 224), preprocess.model_input(data, 224, reduced_jpeg=False)
    assert not np.array_equal(reduced, whole)
    for preprocess_version, pixels in ((preprocess.VERSION, reduced), (2, whole)):
        # a version trained before JPEGs were decoded reduced is still fed the pixels it learnt on
        metadata = json.loads((tmp_path / "v" / "metadata.json").read_text())
        (tmp_path / "v" / "metadata.json").write_text(json.dumps({**metadata, "preprocess_version": preprocess_version}))
        predictor = Predictor(tmp_path / "v")
        from_bytes = predictor.predict(data)
        from_pixels, _ = predictor.predict_pixels(pixels)
        assert np.allclose([from_bytes.probabilities[n] for n in class_names], from_pixels, atol=0)


