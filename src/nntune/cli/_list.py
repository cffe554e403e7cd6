"""``nntune list optimizers|schedules|...``."""

from __future__ import annotations

import json
from typing import Any

import typer

from nntune.cli._app import app, stdout


@app.command("list")
def list_command(
    what: str = typer.Argument(
        ...,
        help="optimizers, schedules, losses, archs, activations, inits, datasets, preprocess, "
        "augment",
        show_default=False,
    ),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """List the names a registry knows, with their options."""
    from nntune.errors import ConfigError, did_you_mean
    from nntune.train.build import REGISTRIES

    singular = {name.removesuffix("es").removesuffix("s"): name for name in REGISTRIES}
    registry = REGISTRIES.get(what) or REGISTRIES.get(singular.get(what, ""))
    if registry is None:
        raise ConfigError(
            f"nntune list {what}: unknown list{did_you_mean(what, REGISTRIES)} "
            f"(allowed: {', '.join(REGISTRIES)})"
        )
    rows: list[dict[str, Any]] = []
    for entry in registry.entries():
        rows.append(
            {
                "name": entry.name,
                "aliases": list(entry.aliases),
                "options": {k: _plain(v) for k, v in entry.defaults().items()},
                "summary": entry.summary,
            }
        )
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    width = max(len(r["name"]) for r in rows)
    for row in rows:
        options = ", ".join(f"{k}={v}" for k, v in row["options"].items())
        aliases = f" (also: {', '.join(row['aliases'])})" if row["aliases"] else ""
        stdout.print(f"{row['name']:<{width}}  {row['summary']}{aliases}", markup=False)
        if options:
            stdout.print(f"{'':<{width}}    options: {options}", markup=False)


def _plain(value: object) -> object:
    if isinstance(value, tuple):
        return list(value)
    return value
