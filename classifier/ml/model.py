"""The two graphs built on a backbone: the embedding extractor and the served classifier.

The served graph applies the linear head to every position of the last feature map (a class
activation map, `cam`), then averages it; because the head is linear this equals the head on
globally pooled features, so the probabilities are those the head was trained on and the map
that explains them is exact. A combined backbone's feature map is its components' maps side by
side per position, so the same holds. Normalisation is each component's first layer: callers feed
0..255 RGB.
"""

from __future__ import annotations

import numpy as np

from classifier.ml.backbones import Backbone, Combined, build_base


def normalise(backbone: Backbone, inputs):
    import keras

    if backbone.rescale is None:
        return inputs
    scale, offset = backbone.rescale
    return keras.layers.Rescaling(scale, offset=offset, name=f"normalise_{backbone.name}")(inputs)


def image_input(backbone: Backbone | Combined):
    import keras

    return keras.Input((backbone.input_size, backbone.input_size, 3), dtype="float32", name="image")


def build_bases(backbone: Backbone | Combined) -> tuple:
    """One frozen Keras base per component (TensorFlow imported here)."""
    return tuple(build_base(component) for component in backbone.components)


def feature_map(backbone: Backbone | Combined, inputs, bases: tuple):
    """(h, w, channels) of every component, concatenated along channels in component order."""
    import keras

    maps = [base(normalise(component, inputs), training=False) for component, base in zip(backbone.components, bases)]
    return maps[0] if len(maps) == 1 else keras.layers.Concatenate(name="features")(maps)


def build_embedder(backbone: Backbone, base=None):
    """uint8-range image batch → pooled features of one backbone (the head's input, or its part)."""
    import keras

    base = base if base is not None else build_base(backbone)
    inputs = image_input(backbone)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(feature_map(backbone, inputs, (base,)))
    return keras.Model(inputs, pooled, name=f"{backbone.name}_embedder")


def build_classifier(backbone: Backbone | Combined, kernel: np.ndarray, bias: np.ndarray, bases: tuple | None = None):
    """Image → {"probabilities": (n,), "cam": (h, w, n) logits per position}, head weights given."""
    import keras

    bases = bases if bases is not None else build_bases(backbone)
    inputs = image_input(backbone)
    head = keras.layers.Dense(kernel.shape[1], name="head")
    cam = head(feature_map(backbone, inputs, bases))
    head.set_weights([kernel, bias])
    logits = keras.layers.GlobalAveragePooling2D(name="pool_logits")(cam)
    probabilities = keras.layers.Softmax(name="probabilities")(logits)
    name = backbone.name.replace("+", "_")
    return keras.Model(inputs, {"probabilities": probabilities, "cam": cam}, name=f"{name}_classifier")
