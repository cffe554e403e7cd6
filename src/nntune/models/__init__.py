"""Models: architectures, activations, normalisation and init, built from the model config."""

from nntune.models.activations import ACTIVATIONS
from nntune.models.archs import ARCHS, ModelSpec, image_shape_of
from nntune.models.build import build_model, count_parameters
from nntune.models.inits import INITS, apply_init

__all__ = [
    "ACTIVATIONS",
    "ARCHS",
    "INITS",
    "ModelSpec",
    "apply_init",
    "build_model",
    "count_parameters",
    "image_shape_of",
]
