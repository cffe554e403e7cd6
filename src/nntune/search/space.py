"""Search spaces: the config's ``search.space`` (or a default one) as Optuna suggestions.

A space maps dotted config keys to a distribution:

    optimizer.lr:        {loguniform: [1.0e-4, 1.0e-1]}
    optimizer.name:      {choice: [adam, sgd, {name: momentum, momentum: 0.9}]}
    optimizer.momentum:  {uniform: [0.8, 0.99]}        # only sampled when the optimizer has it
    model.hidden:        {choice: [[64, 64], [128, 128]]}
    train.batch_size:    {int: [16, 256], steps: 5}     # steps: the grid sampler's points

Conditional parameters: a key ``<component>.<option>`` (optimizer, schedule, loss, model.arch,
...) is sampled only when the component chosen for the trial takes that option, and a ``when:
{key: [values]}`` entry restricts any parameter to trials where ``key`` took one of ``values``
(Optuna's define-by-run spaces; TPE with ``group=True`` models each branch on its own).
Choices that are not plain scalars (lists, mappings) are passed to Optuna as their JSON text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna

from nntune.config import COMPONENT_FIELDS, Config
from nntune.errors import ConfigError

RANGE_KINDS = ("uniform", "loguniform", "int", "logint")
KINDS = (*RANGE_KINDS, "choice")
SPEC_KEYS = {*KINDS, "steps", "when"}
DEFAULT_GRID_STEPS = 3


@dataclass(frozen=True)
class Param:
    """One searched config key."""

    key: str
    kind: str
    bounds: tuple[float, float] | None = None
    choices: tuple[Any, ...] = ()
    steps: int | None = None
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    @property
    def encoded_choices(self) -> list[Any]:
        return [_encode(c) for c in self.choices]

    def grid_values(self) -> list[Any]:
        """The points the grid sampler tries (choices as encoded for Optuna)."""
        if self.kind == "choice":
            return self.encoded_choices
        assert self.bounds is not None
        low, high = self.bounds
        n = self.steps or DEFAULT_GRID_STEPS
        if n == 1:
            points = [low]
        elif self.kind in ("loguniform", "logint"):
            points = [math.exp(math.log(low) + i * (math.log(high) - math.log(low)) / (n - 1))
                      for i in range(n)]  # fmt: skip
        else:
            points = [low + i * (high - low) / (n - 1) for i in range(n)]
        if self.kind in ("int", "logint"):
            return sorted({round(p) for p in points})
        # 12 significant digits, inside the bounds (exp/log round-off must not leave them)
        return [min(high, max(low, float(f"{p:.12g}"))) for p in points]


def _encode(choice: Any) -> Any:
    """Optuna's categorical values must be None, bool, int, float or str."""
    if choice is None or isinstance(choice, (bool, int, float, str)):
        return choice
    return json.dumps(choice, sort_keys=True)


def _decode(value: Any, choices: tuple[Any, ...]) -> Any:
    for choice in choices:
        if _encode(choice) == value:
            return choice
    return value


def parse_space(space: Mapping[str, Mapping[str, Any]]) -> list[Param]:
    """Validated parameters of a ``search.space`` mapping (errors name the key)."""
    params = []
    for key, spec in space.items():
        where = f"search.space.{key}"
        if not isinstance(spec, Mapping):
            raise ConfigError(
                f"{where} must be a mapping like {{uniform: [0.0, 0.5]}}, got {spec!r}"
            )
        unknown = sorted(set(spec) - SPEC_KEYS)
        if unknown:
            raise ConfigError(
                f"{where}: unknown entries {unknown}; allowed: {', '.join(sorted(SPEC_KEYS))}"
            )
        kinds = [k for k in KINDS if k in spec]
        if len(kinds) != 1:
            raise ConfigError(f"{where} needs exactly one of {', '.join(KINDS)}, got {dict(spec)}")
        kind = kinds[0]
        steps = spec.get("steps")
        if steps is not None and (not isinstance(steps, int) or steps < 1):
            raise ConfigError(f"{where}.steps must be a whole number >= 1, got {steps!r}")
        when = _parse_when(spec.get("when"), where)
        if kind == "choice":
            choices = spec["choice"]
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"{where}.choice must be a non-empty list, got {choices!r}")
            params.append(Param(key, kind, choices=tuple(choices), steps=steps, when=when))
            continue
        bounds = spec[kind]
        if not (
            isinstance(bounds, list)
            and len(bounds) == 2
            and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
            and bounds[0] < bounds[1]
        ):
            raise ConfigError(f"{where}.{kind} must be [low, high] with low < high, got {bounds!r}")
        if kind in ("loguniform", "logint") and bounds[0] <= 0:
            raise ConfigError(f"{where}.{kind} needs low > 0 (a log scale), got {bounds!r}")
        if kind in ("int", "logint") and not all(float(b).is_integer() for b in bounds):
            raise ConfigError(f"{where}.{kind} needs whole bounds, got {bounds!r}")
        params.append(
            Param(key, kind, bounds=(float(bounds[0]), float(bounds[1])), steps=steps, when=when)
        )
    return params


def _parse_when(when: Any, where: str) -> dict[str, tuple[Any, ...]]:
    if when is None:
        return {}
    if not isinstance(when, Mapping) or not when:
        raise ConfigError(f"{where}.when must map a key to allowed values, got {when!r}")
    return {k: tuple(v) if isinstance(v, list) else (v,) for k, v in when.items()}


def component_of(key: str) -> tuple[str, str] | None:
    """('optimizer', 'momentum') for 'optimizer.momentum' when optimizer is a component field."""
    for component in sorted(COMPONENT_FIELDS, key=len, reverse=True):
        if component.endswith("[]"):
            continue
        if key.startswith(component + ".") and key.count(".") == component.count(".") + 1:
            return component, key[len(component) + 1 :]
    return None


def candidate_names(params: list[Param], component: str, base_name: str) -> set[str]:
    """The component names a study may use for ``component``: the base config's and every
    choice of a ``<component>.name`` or ``<component>`` parameter."""
    names = {base_name}
    for param in params:
        if param.key in (component, f"{component}.name"):
            names |= {n for n in map(_chosen_name, param.choices) if n is not None}
    return names


def _chosen_name(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("name"), str):
        return value["name"]
    return None


OptionsOf = Callable[[str, str], set[str] | None]  # (component field, name) → its option names


def suggest(
    trial: optuna.Trial, params: list[Param], base: Config, options_of: OptionsOf
) -> dict[str, Any]:
    """The trial's overrides ``{dotted key: value}``, sampling only the parameters that apply."""
    chosen: dict[str, Any] = {}
    for param in _ordered(params):
        if not _applies(param, chosen, base, options_of):
            continue
        chosen[param.key] = _suggest_one(trial, param)
    return chosen


def _ordered(params: list[Param]) -> list[Param]:
    """Whole components and component names first, so their options can depend on them."""

    def names_a_component(key: str) -> bool:
        return key in COMPONENT_FIELDS or (
            key.endswith(".name") and key.removesuffix(".name") in COMPONENT_FIELDS
        )

    return sorted(params, key=lambda p: not names_a_component(p.key))


def _current(key: str, chosen: Mapping[str, Any], base: Config) -> Any:
    if key in chosen:
        return chosen[key]
    value: Any = base
    for part in key.split("."):
        value = getattr(value, part, None) if not isinstance(value, Mapping) else value.get(part)
        if value is None:
            return None
    return value


def _applies(param: Param, chosen: Mapping[str, Any], base: Config, options_of: OptionsOf) -> bool:
    for key, allowed in param.when.items():
        value = _current(key, chosen, base)
        name = _chosen_name(value) if not isinstance(value, (int, float, bool)) else None
        if value not in allowed and name not in allowed:
            return False
    located = component_of(param.key)
    if located is None:
        return True
    component, option = located
    if option == "name":
        return True
    picked = chosen.get(f"{component}.name", chosen.get(component))
    if picked is None:
        picked = _current(component, chosen, base)
        picked = getattr(picked, "name", picked)
    name = _chosen_name(picked)
    if name is None:
        return True
    options = options_of(component, name)
    return options is None or option in options


def _suggest_one(trial: optuna.Trial, param: Param) -> Any:
    key = param.key
    if param.kind == "choice":
        return _decode(trial.suggest_categorical(key, param.encoded_choices), param.choices)
    assert param.bounds is not None
    low, high = param.bounds
    if param.kind == "uniform":
        return trial.suggest_float(key, low, high)
    if param.kind == "loguniform":
        return trial.suggest_float(key, low, high, log=True)
    return trial.suggest_int(key, int(low), int(high), log=param.kind == "logint")


def grid_space(params: list[Param]) -> dict[str, list[Any]]:
    """Optuna's GridSampler space: every parameter's grid points."""
    return {p.key: p.grid_values() for p in params}


def decode_params(params: list[Param], values: Mapping[str, Any]) -> dict[str, Any]:
    """Optuna's stored params back into config values (JSON-encoded choices decoded)."""
    by_key = {p.key: p for p in params}
    decoded = {}
    for key, value in values.items():
        param = by_key.get(key)
        decoded[key] = _decode(value, param.choices) if param and param.kind == "choice" else value
    return decoded


def config_point(params: list[Param], config: Mapping[str, Any]) -> dict[str, Any]:
    """The config's own values of the searched keys (as Optuna stores them), for those keys
    whose value the config sets and the space contains: the study's first trial, so a search
    starts from the user's recipe and cannot end with a best trial worse than it."""
    point: dict[str, Any] = {}
    for param in params:
        value: Any = config
        for part in param.key.split("."):
            if isinstance(value, str) and part == "name":
                continue  # the shorthand `schedule: cosine` is `schedule: {name: cosine}`
            if not isinstance(value, Mapping) or part not in value:
                break
            value = value[part]
        else:
            if param.kind == "choice":
                if _encode(value) in param.encoded_choices:
                    point[param.key] = _encode(value)
                continue
            assert param.bounds is not None
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if number and param.bounds[0] <= value <= param.bounds[1]:
                point[param.key] = int(value) if param.kind in ("int", "logint") else float(value)
    return point


# --- the default space -------------------------------------------------------------------------


def default_space(config: Config, task: str, small: bool = False) -> dict[str, dict[str, Any]]:
    """A sensible space for the config's task and arch, so `nntune tune cfg` needs no search:
    block: learning rate around the config's, optimizer family, weight decay, dropout, batch
    size, width and depth, schedule, and label smoothing for cross-entropy. ``small`` (few
    validation rows, search/folds.py): an mlp may also be ``linear``, no hidden layer."""
    lr = float(config.optimizer.options.get("lr", 1e-3))
    space: dict[str, dict[str, Any]] = {
        "optimizer.lr": {"loguniform": [_round(lr / 10), _round(min(lr * 10, 1.0))], "steps": 3},
        "optimizer.name": {"choice": ["adamw", "adam", "momentum"]},
        "optimizer.weight_decay": {"loguniform": [1e-6, 1e-1], "steps": 3},
        "model.dropout": {"uniform": [0.0, 0.5], "steps": 3},
        "train.batch_size": {"choice": _batch_sizes(config.train.batch_size)},
        "schedule.name": {"choice": ["constant", "cosine", "one_cycle"]},
    }
    widths = _width_choices(config.model.hidden)
    if small and _is_mlp(config.model.arch.name):
        # a linear model (logistic or linear regression) is often the best there is on a small
        # table: breast_cancer's LogisticRegression 98.2 % against the mlp study's 96.5 %.
        # No when: on the widths and dropout (linear ignores them): the space stays flat, and
        # so a GP's (search/choice.py)
        space["model.arch"] = {"choice": [config.model.arch.name, "linear"]}
    if len(widths) > 1:
        space["model.hidden"] = {"choice": widths}
    loss = config.loss.name
    if task == "classification" and loss in ("cross_entropy", "auto", "ce"):
        space["loss.label_smoothing"] = {"uniform": [0.0, 0.2], "steps": 3}
        if loss == "auto":
            space["loss.name"] = {"choice": ["cross_entropy"]}
    return {key: spec for key, spec in space.items() if _understood(config, key)}


def _understood(config: Config, key: str) -> bool:
    """A user's arch takes model.dropout, model.hidden... only where its signature says so;
    the default space leaves the keys it does not take alone (it searches none of the arch's
    own options either: their ranges are the user's to give in search.space)."""
    from nntune.models import ARCHS
    from nntune.usercode import is_reference, takes

    section, _, name = key.partition(".")
    if section != "model" or not is_reference(config.model.arch.name):
        return True
    return takes(ARCHS.get(config.model.arch.name, key="model.arch").target, name)


def _is_mlp(arch: str) -> bool:
    from nntune.models import ARCHS

    return arch in ARCHS and ARCHS.canonical(arch) == "mlp"


def _round(value: float) -> float:
    return float(f"{value:.2g}")


def _batch_sizes(batch_size: int) -> list[int]:
    return sorted({max(8, batch_size // 2), batch_size, batch_size * 2})


def _width_choices(hidden: list[int]) -> list[list[int]]:
    """The config's widths halved and doubled, and one layer fewer and more."""
    if not hidden:
        return []
    options = [
        [max(4, h // 2) for h in hidden],
        list(hidden),
        [h * 2 for h in hidden],
    ]
    if len(hidden) > 1:
        options.append(list(hidden[:-1]))
    options.append([*hidden, hidden[-1]])
    unique: list[list[int]] = []
    for option in options:
        if option not in unique:
            unique.append(option)
    return unique
