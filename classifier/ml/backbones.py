"""Frozen ImageNet backbones: which Keras application, its input size, weights and normalisation.

Weights are looked for under $KERAS_HOME/models/ (then ~/.keras/models/) by the file name Keras
downloads them as, so an offline machine works with a prepared folder; elsewhere Keras downloads
them. When neither works the error names the file and the folder to put it in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class WeightsUnavailable(RuntimeError):
    """The backbone's ImageNet weights are neither on disk nor downloadable."""


@dataclass(frozen=True)
class Backbone:
    name: str
    application: str  # attribute of keras.applications
    options: tuple[tuple[str, object], ...]
    input_size: int
    weights_file: str
    # (scale, offset) applied inside the model: pixels in 0..255 → what the backbone was trained on.
    rescale: tuple[float, float] | None
    download_url: str

    def weights_path(self) -> Path | None:
        for home in (os.environ.get("KERAS_HOME"), Path.home() / ".keras"):
            if home and (Path(home) / "models" / self.weights_file).is_file():
                return Path(home) / "models" / self.weights_file
        return None

    def missing_weights_message(self, cause: Exception | None = None) -> str:
        home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
        return (
            f"The ImageNet weights for the backbone {self.name!r} are not available"
            f"{f' ({cause})' if cause else ''}. Download {self.weights_file} from {self.download_url} and put it "
            f"in {home / 'models'}/ (or set KERAS_HOME to a folder whose models/ holds it), or run where Keras can "
            "download it."
        )


KERAS_WEIGHTS = "https://storage.googleapis.com/tensorflow/keras-applications"
MOBILENET_RESCALE = (1 / 127.5, -1.0)

BACKBONES = {
    backbone.name: backbone
    for backbone in (
        Backbone(
            "mobilenet_v2", "MobileNetV2", (("alpha", 1.0),), 224,
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5", MOBILENET_RESCALE,
            f"{KERAS_WEIGHTS}/mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
        ),
        Backbone(
            "mobilenet_v2_035", "MobileNetV2", (("alpha", 0.35),), 224,
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5", MOBILENET_RESCALE,
            f"{KERAS_WEIGHTS}/mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5",
        ),
        Backbone(
            "mobilenet_025", "MobileNet", (("alpha", 0.25),), 224,
            "mobilenet_2_5_224_tf_no_top.h5", MOBILENET_RESCALE,
            f"{KERAS_WEIGHTS}/mobilenet/mobilenet_2_5_224_tf_no_top.h5",
        ),
        # EfficientNet normalises inside its own graph.
        Backbone(
            "efficientnet_b0", "EfficientNetB0", (), 224, "efficientnetb0_notop.h5", None,
            "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5",
        ),
    )
}
DEFAULT_BACKBONE = "mobilenet_v2"


def backbone_get(name: str) -> Backbone:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"Unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}.") from None


def build_base(backbone: Backbone):
    """The Keras backbone without its top, frozen, with ImageNet weights (TensorFlow imported here)."""
    import keras

    constructor = getattr(keras.applications, backbone.application)
    shape = (backbone.input_size, backbone.input_size, 3)
    local = backbone.weights_path()
    try:
        base = constructor(
            include_top=False, weights=str(local) if local else "imagenet", input_shape=shape, **dict(backbone.options)
        )
    except Exception as error:  # no network, a proxy page instead of the file, a truncated download…
        if local is None:
            raise WeightsUnavailable(backbone.missing_weights_message(error)) from error
        raise
    base.trainable = False
    return base
