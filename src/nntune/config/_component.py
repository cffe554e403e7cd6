"""A component reference in a config: a bare name, or a mapping with ``name:`` and options."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler, model_serializer, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema


class Component(BaseModel):
    """``adam`` or ``{name: adam, lr: 3.0e-3}``.

    The config layer only checks the shape; which names exist and which options each takes is
    declared by the component's registry and checked when the config is resolved.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    options: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _from_user_form(cls, data: Any) -> Any:
        if isinstance(data, Component):
            return data
        if isinstance(data, str):
            return {"name": data, "options": {}}
        if isinstance(data, dict):
            if set(data) == {"name", "options"} and isinstance(data["options"], dict):
                return data  # already in the internal form (a dump or a copy)
            if "name" not in data:
                raise ValueError(
                    "a component given as a mapping needs a 'name:' key "
                    "(e.g. {name: adam, lr: 0.001}), or give the bare name"
                )
            name = data["name"]
            if not isinstance(name, str):
                raise ValueError(f"component name must be a string, got {name!r}")
            return {"name": name, "options": {k: v for k, v in data.items() if k != "name"}}
        raise ValueError(
            f"expected a component name or a mapping with 'name:', got {type(data).__name__}"
        )

    @model_serializer
    def _to_user_form(self) -> str | dict[str, Any]:
        if not self.options:
            return self.name
        return {"name": self.name, **self.options}

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "anyOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "properties": {"name": {"type": "string"}},
                    "required": ["name"],
                },
            ]
        }

    def with_options(self, **options: Any) -> Component:
        return Component(name=self.name, options={**self.options, **options})

    def user_form(self) -> str | dict[str, Any]:
        return self._to_user_form()
