"""Models: architectures, activations, normalisation and init, built from the model config."""

from nntune.models import (
    resnet2d,  # noqa: F401  (registers the image ResNet)
    series1d,  # noqa: F401  (registers cnn1d, resnet1d and inception1d)
    text,  # noqa: F401  (registers bag and textcnn)
)
from nntune.models.activations import ACTIVATIONS
from nntune.models.archs import ARCHS, ModelSpec, image_shape_of
from nntune.models.build import build_model, count_parameters
from nntune.models.image_input import ImageModel, image_model
from nntune.models.inits import INITS, apply_init
from nntune.models.user import ARCH_FACTS

__all__ = [
    "ACTIVATIONS",
    "ARCHS",
    "ARCH_FACTS",
    "INITS",
    "ImageModel",
    "ModelSpec",
    "apply_init",
    "build_model",
    "count_parameters",
    "image_model",
    "image_shape_of",
]
