"""``nntune schema``: JSON Schema of the config, for editor completion."""

from __future__ import annotations

import json

from nntune.cli._app import app


@app.command("schema")
def schema_command() -> None:
    """Print the JSON Schema of the config (component names included) to stdout."""
    from nntune.config import config_json_schema
    from nntune.train.build import REGISTRIES

    names = {family: registry.list() for family, registry in REGISTRIES.items()}
    print(json.dumps(config_json_schema(names), indent=2))
