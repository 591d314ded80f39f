"""The two graphs built on a backbone: the embedding extractor and the served classifier.

The served graph applies the linear head to every position of the last feature map (a class
activation map, `cam`), then averages it; because the head is linear this equals the head on
globally pooled features, so the probabilities are those the head was trained on and the map
that explains them is exact. Normalisation is the graph's first layer: callers feed 0..255 RGB.
"""

from __future__ import annotations

import numpy as np

from classifier.ml.backbones import Backbone, build_base


def normalise(backbone: Backbone, inputs):
    import keras

    if backbone.rescale is None:
        return inputs
    scale, offset = backbone.rescale
    return keras.layers.Rescaling(scale, offset=offset, name="normalise")(inputs)


def image_input(backbone: Backbone):
    import keras

    return keras.Input((backbone.input_size, backbone.input_size, 3), dtype="float32", name="image")


def build_embedder(backbone: Backbone, base=None):
    """uint8-range image batch → pooled features (the head's input)."""
    import keras

    base = base if base is not None else build_base(backbone)
    inputs = image_input(backbone)
    features = base(normalise(backbone, inputs), training=False)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    return keras.Model(inputs, pooled, name=f"{backbone.name}_embedder")


def build_classifier(backbone: Backbone, kernel: np.ndarray, bias: np.ndarray, base=None):
    """Image → {"probabilities": (n,), "cam": (h, w, n) logits per position}, head weights given."""
    import keras

    base = base if base is not None else build_base(backbone)
    inputs = image_input(backbone)
    features = base(normalise(backbone, inputs), training=False)
    head = keras.layers.Dense(kernel.shape[1], name="head")
    cam = head(features)
    head.set_weights([kernel, bias])
    logits = keras.layers.GlobalAveragePooling2D(name="pool_logits")(cam)
    probabilities = keras.layers.Softmax(name="probabilities")(logits)
    return keras.Model(inputs, {"probabilities": probabilities, "cam": cam}, name=f"{backbone.name}_classifier")
