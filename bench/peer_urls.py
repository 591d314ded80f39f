"""The designs the prediction queue is measured against, as plain synchronous Django views.

- sync_litert: the same LiteRT model, loaded once per process, run inside the request;
- naive_keras: the Keras model, loaded once per process, `model.predict` inside the request;
- seed: the naive design this project learns from, loading the Keras model inside every request.
All three use the project's preprocessing and read the active version's artifacts.
"""

import os

import numpy as np
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from classifier import selectors
from classifier.ml import preprocess
from classifier.ml.predictor import Predictor
from dataset.models import Dataset

_cache = {}


def active_directory():
    if "directory" not in _cache:
        dataset = Dataset.objects.get(slug=os.environ.get("BENCH_DATASET", "bench"))
        version = selectors.active_version(dataset=dataset)
        _cache["directory"] = selectors.artifact_path(version=version)
        _cache["labels"] = version.labels
    return _cache["directory"]


def keras_answer(model, data: bytes) -> JsonResponse:
    pixels = preprocess.model_input(data, 224).astype(np.float32)[None]
    probabilities = model.predict(pixels, verbose=0)["probabilities"][0]
    index = int(probabilities.argmax())
    return JsonResponse({"label": _cache["labels"][index], "confidence": float(probabilities[index])})


@csrf_exempt
def sync_litert(request):
    if "predictor" not in _cache:
        _cache["predictor"] = Predictor(active_directory())
    prediction = _cache["predictor"].predict(request.FILES["image"].read())
    return JsonResponse({"label": prediction.label, "confidence": prediction.confidence})


@csrf_exempt
def naive_keras(request):
    import keras

    if "keras" not in _cache:
        _cache["keras"] = keras.saving.load_model(active_directory() / "model.keras")
    return keras_answer(_cache["keras"], request.FILES["image"].read())


@csrf_exempt
def seed(request):
    import keras

    model = keras.saving.load_model(active_directory() / "model.keras")
    return keras_answer(model, request.FILES["image"].read())


urlpatterns = [
    path("sync-litert", sync_litert),
    path("naive-keras", naive_keras),
    path("seed", seed),
]
