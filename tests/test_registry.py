"""Registries: lookup by name or alias, did-you-mean errors, duplicate names, option checks."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field

from nntune.errors import ConfigError
from nntune.registry import Registry


class ToyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate: float = Field(0.5, gt=0.0, le=1.0)
    width: int = 3


def make_registry() -> Registry:
    registry: Registry = Registry("widget")

    @registry.register("sprocket", options=ToyOptions, aliases=("cog",))
    def sprocket(options: ToyOptions) -> str:
        """Makes sprockets.

        More text that is not the summary.
        """
        return f"sprocket {options.rate}"

    @registry.register("gizmo", tags=("small",))
    def gizmo(options: BaseModel) -> str:
        return "gizmo"

    return registry


def test_list_is_canonical_names_in_registration_order() -> None:
    registry = make_registry()
    assert registry.list() == ["sprocket", "gizmo"]
    assert registry.list(tag="small") == ["gizmo"]
    assert len(registry) == 2
    assert list(registry) == ["sprocket", "gizmo"]


def test_summary_is_first_docstring_line() -> None:
    assert make_registry().get("sprocket").summary == "Makes sprockets."


def test_alias_resolves_to_the_same_entry() -> None:
    registry = make_registry()
    assert "cog" in registry
    assert registry.canonical("cog") == "sprocket"
    assert registry.get("cog") is registry.get("sprocket")
    assert registry.get("cog").name == "sprocket"


def test_unknown_name_names_key_lists_known_and_suggests_closest() -> None:
    registry = make_registry()
    with pytest.raises(ConfigError) as info:
        registry.get("sprockett", key="parts.widget")
    message = str(info.value)
    assert "parts.widget" in message
    assert "sprockett" in message
    assert "did you mean 'sprocket'" in message
    assert "sprocket" in message and "gizmo" in message  # the known names are listed


def test_unknown_name_without_close_match_has_no_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        make_registry().get("zzzzzzzz")
    assert "did you mean" not in str(info.value)
    assert "gizmo" in str(info.value)


def test_real_registry_suggests_the_closest_name() -> None:
    from nntune.optim import OPTIMIZERS

    with pytest.raises(ConfigError) as info:
        OPTIMIZERS.get("adma", key="optimizer")
    message = str(info.value)
    assert "optimizer" in message
    assert "did you mean 'adam'" in message
    for name in OPTIMIZERS.list():
        assert name in message


@pytest.mark.parametrize("duplicate", ["sprocket", "cog"])
def test_registering_a_name_or_alias_twice_fails(duplicate: str) -> None:
    registry = make_registry()
    with pytest.raises(ValueError, match=duplicate):
        registry.register(duplicate)(lambda options: None)


def test_alias_clashing_with_a_name_fails() -> None:
    registry = make_registry()
    with pytest.raises(ValueError, match="gizmo"):
        registry.register("doohickey", aliases=("gizmo",))(lambda options: None)


def test_parse_options_accepts_valid_options_and_fills_defaults() -> None:
    entry = make_registry().get("sprocket")
    options = entry.parse_options({"rate": 0.25}, "widget")
    assert isinstance(options, ToyOptions)
    assert options.rate == 0.25 and options.width == 3
    assert entry.defaults() == {"rate": 0.5, "width": 3}


def test_unknown_option_names_component_key_and_suggests_closest() -> None:
    entry = make_registry().get("sprocket")
    with pytest.raises(ConfigError) as info:
        entry.parse_options({"rat": 0.1}, "widget")
    message = str(info.value)
    assert "widget.rat" in message
    assert "sprocket" in message
    assert "did you mean 'widget.rate'" in message


def test_bad_option_value_names_component_and_key() -> None:
    entry = make_registry().get("sprocket")
    with pytest.raises(ConfigError) as info:
        entry.parse_options({"rate": 2.0}, "widget")
    message = str(info.value)
    assert "widget.rate" in message
    assert "2.0" in message
    assert "sprocket" in message


def test_component_without_options_rejects_any_option() -> None:
    entry = make_registry().get("gizmo")
    with pytest.raises(ConfigError, match="gizmo"):
        entry.parse_options({"size": 1}, "widget")


def test_real_optimizer_option_typo() -> None:
    from nntune.optim import OPTIMIZERS

    with pytest.raises(ConfigError) as info:
        OPTIMIZERS.get("sgd").parse_options({"momentun": 0.9}, "optimizer")
    message = str(info.value)
    assert "optimizer.momentun" in message
    assert "'sgd'" in message
    assert "did you mean 'optimizer.momentum'" in message
