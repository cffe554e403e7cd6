"""``nntune list optimizers|schedules|...``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from nntune.cli._app import app, stdout


@app.command("list")
def list_command(
    what: str = typer.Argument(
        ...,
        help="optimizers, schedules, losses, archs, activations, inits, datasets, preprocess, "
        "augment, strategies, callbacks",
        show_default=False,
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="also list the user code this config names in the family (shown as 'from FILE')",
    ),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """List the names a registry knows, with their options; with --config, also the user
    components (path.py:name) the config names, with the options their signatures take."""
    from nntune.config import COMPONENT_FIELDS, load_config, reference_places
    from nntune.errors import ConfigError, did_you_mean
    from nntune.train.build import REGISTRIES

    singular = {name.removesuffix("es").removesuffix("s"): name for name in REGISTRIES}
    family = what if what in REGISTRIES else singular.get(what)
    if family is None:
        raise ConfigError(
            f"nntune list {what}: unknown list{did_you_mean(what, REGISTRIES)} "
            f"(allowed: {', '.join(REGISTRIES)})"
        )
    registry = REGISTRIES[family]
    entries = registry.entries()
    if config is not None:
        from nntune.config import config_to_dict

        raw = config_to_dict(load_config(config))
        fields = {f.removesuffix("[]") for f, fam in COMPONENT_FIELDS.items() if fam == family}
        if family == "datasets":
            fields.add("data.dataset")
        for key, container, index in reference_places(raw):
            if key.split("[")[0] in fields:
                entries.append(registry.get(container[index], key=key))
    rows: list[dict[str, Any]] = []
    for entry in entries:
        rows.append(
            {
                "name": entry.name,
                "aliases": list(entry.aliases),
                "options": {k: _plain(v) for k, v in entry.defaults().items()},
                "summary": entry.summary,
                "source": entry.source,
            }
        )
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        stdout.print(
            f"no built-in {registry.plural}: name your own as path.py:name "
            f"(nntune list {family} --config CONFIG shows a config's)",
            markup=False,
        )
        return
    width = max(len(_shown(r)) for r in rows)
    for row in rows:
        options = ", ".join(f"{k}={v}" for k, v in row["options"].items())
        aliases = f" (also: {', '.join(row['aliases'])})" if row["aliases"] else ""
        stdout.print(f"{_shown(row):<{width}}  {row['summary']}{aliases}", markup=False)
        if options:
            stdout.print(f"{'':<{width}}    options: {options}", markup=False)


def _shown(row: dict[str, Any]) -> str:
    if row["source"] is None:
        return str(row["name"])
    return f"{str(row['name']).rsplit(':', 1)[1]} (from {row['source']})"


def _plain(value: object) -> object:
    if isinstance(value, tuple):
        return list(value)
    return value
