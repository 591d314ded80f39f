"""The BentoML peer of bench/serve.py: the sync LiteRT view's Predictor and preprocessing behind
BentoML's server instead of gunicorn + Django, to see what a serving framework costs or gains.

BentoML is no project dependency, so this runs in its own venv (BENTOML_PYTHON) without Django;
serve.py passes the active version's directory in BENCH_MODEL_DIR and starts, from bench/,
    $BENTOML_PYTHON -m bentoml serve bentoml_service:Classifier --host 127.0.0.1 --port 8103
"""

import os
import sys
from pathlib import Path

import bentoml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project root, for classifier.ml
from classifier.ml.predictor import Predictor


# No access log: the gunicorn peers write none either.
@bentoml.service(workers=2, traffic={"timeout": 120}, logging={"access": {"enabled": False}})
class Classifier:
    """Two worker processes, each with one Predictor and, for a sync API, one request at a time:
    the sync view's 2 gunicorn sync workers."""

    def __init__(self):
        self.predictor = Predictor(Path(os.environ["BENCH_MODEL_DIR"]))

    @bentoml.api
    def predict(self, image: Path) -> dict:
        prediction = self.predictor.predict(image.read_bytes())
        return {"label": prediction.label, "confidence": prediction.confidence}
