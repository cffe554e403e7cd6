"""Typed, validated config: YAML in and out, ``--set`` overrides, JSON Schema. Knows no torch."""

from nntune.config._component import Component
from nntune.config._load import (
    apply_overrides,
    config_json_schema,
    config_to_dict,
    config_to_yaml,
    load_config,
    parse_override,
    read_yaml,
    reference_places,
    validate_config,
)
from nntune.config._schema import (
    COMPONENT_FIELDS,
    Config,
    DataConfig,
    EarlyStoppingConfig,
    GradClipConfig,
    ImageConfig,
    ModelConfig,
    RegularizationConfig,
    SearchConfig,
    SwaConfig,
    TrainConfig,
    ValFold,
)

__all__ = [
    "COMPONENT_FIELDS",
    "Component",
    "Config",
    "DataConfig",
    "EarlyStoppingConfig",
    "GradClipConfig",
    "ImageConfig",
    "ModelConfig",
    "RegularizationConfig",
    "SearchConfig",
    "SwaConfig",
    "TrainConfig",
    "ValFold",
    "apply_overrides",
    "config_json_schema",
    "config_to_dict",
    "config_to_yaml",
    "load_config",
    "parse_override",
    "read_yaml",
    "reference_places",
    "validate_config",
]
