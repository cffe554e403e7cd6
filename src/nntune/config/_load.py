"""Config in and out: YAML files, ``--set`` overrides, path resolution, JSON Schema."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from nntune.config._component import Component
from nntune.config._schema import COMPONENT_FIELDS, Config
from nntune.errors import ConfigError
from nntune.usercode import REFERENCE_PATTERN, absolute_reference, is_reference, short_name
from nntune.validation import config_error

# Keys whose values are file paths when they look like one; resolved against the config's folder.
PATH_KEYS = ("data.dataset", "train.init_from")
ALWAYS_PATHS = ("train.init_from",)  # a run folder: any string is a path
PATH_SUFFIXES = (".csv", ".parquet", ".pq", ".npz", ".tsv")

ConfigSource = str | Path | Mapping[str, Any] | Config


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML file that must hold a mapping; errors name the file."""
    if not path.exists():
        raise ConfigError(f"config file '{path}' not found")
    if path.is_dir():
        raise ConfigError(f"config file '{path}' is a folder; give a .yaml file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"config file '{path}' is not valid YAML: {err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file '{path}' is not a UTF-8 text file") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"config file '{path}' must hold a mapping of keys (data:, model:, ...), "
            f"got {type(raw).__name__}"
        )
    return raw


def parse_override(text: str) -> tuple[str, Any]:
    """``"optimizer.lr=3e-3"`` → ``("optimizer.lr", 0.003)``; the value is read as YAML."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set '{text}': expected KEY=VALUE, e.g. --set optimizer.lr=3e-3")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"--set '{text}': the value is not valid YAML: {err}") from None
    # YAML 1.1 reads 3e-3 as a string (it wants 3.0e-3); users mean the number
    if isinstance(parsed, str):
        with contextlib.suppress(ValueError):
            parsed = float(parsed) if _looks_numeric(parsed) else parsed
    return key, parsed


def _looks_numeric(text: str) -> bool:
    return any(c.isdigit() for c in text) and all(c in "0123456789.eE+-" for c in text)


def apply_overrides(raw: dict[str, Any], overrides: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """A copy of ``raw`` with each dotted key set; bare component names grow into mappings."""
    result = copy.deepcopy(raw)
    for key, value in overrides:
        parts = key.split(".")
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None and _is_component(parts[: depth + 1]):
                # `--set optimizer.lr=0.1` with no optimizer in the file sets the default's option
                child = node[part] = _default_component(parts[: depth + 1])
            elif child is None:
                child = node[part] = {}
            elif isinstance(child, str) and _is_component(parts[: depth + 1]):
                # `optimizer: adam` + `--set optimizer.lr=0.1` → {name: adam, lr: 0.1}
                child = node[part] = {"name": child}
            elif not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise ConfigError(
                    f"--set {key}: '{where}' holds {child!r}, which has no key '{parts[depth + 1]}'"
                )
            node = child
        node[parts[-1]] = value
    return result


def _is_component(parts: list[str]) -> bool:
    return ".".join(parts) in COMPONENT_FIELDS


def _default_component(parts: list[str]) -> dict[str, Any]:
    """The default of the component field at ``parts``, as a ``{name: ..., options}`` mapping."""
    model: Any = Config
    for part in parts[:-1]:
        model = model.model_fields[part].annotation
    default = model.model_fields[parts[-1]].get_default(call_default_factory=True)
    return {"name": default.name, **copy.deepcopy(default.options)}


def _looks_like_path(value: str) -> bool:
    return value.lower().endswith(PATH_SUFFIXES) or "/" in value or "\\" in value


def resolve_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative file paths in ``raw`` (and in references to user code) made absolute against
    ``base``."""
    result = resolve_references(copy.deepcopy(raw), base)
    for key in PATH_KEYS:
        *parents, leaf = key.split(".")
        node: Any = result
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(leaf), str):
            value = node[leaf]
            if is_reference(value):
                continue
            is_path = key in ALWAYS_PATHS or _looks_like_path(value)
            if is_path and not Path(value).expanduser().is_absolute():
                node[leaf] = str((base / Path(value)).resolve())
            elif is_path:
                node[leaf] = str(Path(value).expanduser())
    return result


def reference_places(raw: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """Every place of a config (as a raw mapping) that may hold a reference to user code:
    ``(key, container, index)`` with ``container[index]`` the name (component names, the
    dataset, metric names)."""
    places: list[tuple[str, Any, Any]] = []
    for dotted in [*COMPONENT_FIELDS, "data.dataset", "train.metrics[]"]:
        *parents, leaf = dotted.split(".")
        node: Any = raw
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        field = leaf.removesuffix("[]")
        if not isinstance(node, dict) or field not in node:
            continue
        items = list(enumerate(node[field] or [])) if leaf.endswith("[]") else [(None, node[field])]
        for index, item in items:
            key = ".".join([*parents, field]) + (f"[{index}]" if index is not None else "")
            if isinstance(item, dict) and "name" in item:
                places.append((key, item, "name"))
            elif index is None:
                places.append((key, node, field))
            else:
                places.append((key, node[field], index))
    return [(k, c, i) for k, c, i in places if is_reference(c[i])]


def resolve_references(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """File references (``models.py:Net``) made absolute against ``base``, in place."""
    for _, container, index in reference_places(raw):
        container[index] = absolute_reference(container[index], base)
    return raw


def load_config(
    source: ConfigSource,
    overrides: Iterable[str] | Mapping[str, Any] | None = None,
) -> Config:
    """A validated :class:`Config` from a YAML path, a mapping or a Config, plus overrides.

    Overrides are ``"key=value"`` strings (as given to ``--set``) or a ``{dotted_key: value}``
    mapping. Relative paths in the file are resolved against the file's folder; relative paths
    in overrides against the working directory.
    """
    name_default: str | None = None
    if isinstance(source, Config):
        raw = source.model_dump(mode="json")
    elif isinstance(source, Mapping):
        raw = resolve_paths(dict(source), Path.cwd())
    else:
        path = Path(source).expanduser()
        raw = resolve_paths(read_yaml(path), path.resolve().parent)
        name_default = path.stem
    pairs = override_pairs(overrides)
    raw = resolve_paths(apply_overrides(raw, pairs), Path.cwd())
    config = validate_config(raw)
    if config.name is None:
        config.name = name_default or _default_name(config)
    return config


def _default_name(config: Config) -> str:
    dataset, arch = config.data.dataset, config.model.arch.name
    if is_reference(dataset):
        dataset = short_name(dataset)
    elif "/" in dataset:
        dataset = Path(dataset).stem
    return f"{dataset}-{short_name(arch)}"


def override_pairs(overrides: Iterable[str] | Mapping[str, Any] | None) -> list[tuple[str, Any]]:
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return list(overrides.items())
    return [parse_override(text) for text in overrides]


def validate_config(raw: Mapping[str, Any]) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise config_error(err, Config) from None


def config_to_dict(config: Config) -> dict[str, Any]:
    """The user form of ``config`` (components as bare names or mappings)."""
    dumped: dict[str, Any] = config.model_dump(mode="json")
    return dumped


def config_to_yaml(config: Config) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False, allow_unicode=True)


def config_json_schema(
    component_names: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, Any]:
    """JSON Schema of the config, for editors; known component names become enums."""
    schema = Config.model_json_schema()
    schema["title"] = "nntune config"
    _user_form_defaults(schema)
    _user_options_only(schema)
    if component_names:
        _add_name_enums(schema, {k: sorted(v) for k, v in component_names.items()})
    return schema


def _add_name_enums(schema: dict[str, Any], names: dict[str, list[str]]) -> None:
    """Replace the generic component schema at each component field with one that lists names."""
    defs = schema.get("$defs", {})
    for dotted, family in COMPONENT_FIELDS.items():
        if family not in names:
            continue
        *parents, leaf = dotted.split(".")
        is_list = leaf.endswith("[]")
        leaf = leaf.removesuffix("[]")
        node = schema
        for part in parents:
            ref = node["properties"][part]
            node = _deref(ref, defs)
        prop = node["properties"][leaf]
        enum = names[family]
        one = {
            "anyOf": [
                {"type": "string", "enum": enum},
                {
                    "type": "object",
                    "properties": {"name": {"type": "string", "enum": enum}},
                    "required": ["name"],
                },
            ]
        }
        keep = {k: v for k, v in prop.items() if k in ("default", "description", "title")}
        node["properties"][leaf] = {**keep, **({"type": "array", "items": one} if is_list else one)}


def _user_options_only(schema: dict[str, Any]) -> None:
    """model: and data: take keys of their own only, unless their arch (dataset) is user code,
    whose options the other keys are."""
    reference = {"type": "string", "pattern": REFERENCE_PATTERN}
    named = {"type": "object", "properties": {"name": reference}, "required": ["name"]}
    for section, key, forms in (
        ("ModelConfig", "arch", [reference, named]),
        ("DataConfig", "dataset", [reference]),
    ):
        node = schema["$defs"][section]
        node.pop("additionalProperties", None)
        node["if"] = {"properties": {key: {"anyOf": forms}}, "required": [key]}
        node["else"] = {"propertyNames": {"enum": list(node["properties"])}}


def _user_form_defaults(node: Any) -> None:
    """Show component defaults as users write them (``adam``, ``{name: adam, lr: ...}``)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "default":
                node[key] = _component_user_form(value)
            else:
                _user_form_defaults(value)
    elif isinstance(node, list):
        for item in node:
            _user_form_defaults(item)


def _component_user_form(value: Any) -> Any:
    if isinstance(value, list):
        return [_component_user_form(v) for v in value]
    if isinstance(value, dict) and set(value) == {"name", "options"}:
        return Component.model_validate(value).user_form()
    if isinstance(value, dict):
        return {k: _component_user_form(v) for k, v in value.items()}
    return value


def _deref(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        found: dict[str, Any] = defs[name]
        return found
    for option in node.get("anyOf", []):
        if "$ref" in option:
            return _deref(option, defs)
    return node
