"""User code named in a config: a reference ``path.py:name`` or ``package.module:name``.

A reference stands where a built-in name would (``model.arch``, ``data.dataset``, ``loss``,
``train.metrics``, augment and preprocess steps, ``train.callbacks``). This module parses and
imports references, hashes the files they come from, and builds the options a callable takes
from its signature, so that a registry can treat the user's component like one of its own:
unknown options are errors before anything trains, and the facts nntune knows (input shape,
number of outputs, task...) go to the parameters that ask for them by name.

Imports happen only here, only for references found in a config the user runs, or in a run
folder's own ``code/`` copy when the user trusts it (``--trust-code``); nothing else turns a
config value into an import.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
import traceback
import typing
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

from nntune.errors import ConfigError, did_you_mean

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = rf"{_IDENTIFIER}(?:\.{_IDENTIFIER})*"
REFERENCE = re.compile(rf"^(?P<module>.+\.py|{_DOTTED}):(?P<attr>{_DOTTED})$")
# the same, as a JSON Schema (ECMA-262) pattern
REFERENCE_PATTERN = rf"^(.+\.py|{_DOTTED}):{_DOTTED}$"


class UserCodeError(ConfigError):
    """The user's code could not be imported or called as the config asks."""


def is_reference(value: object) -> bool:
    """``models.py:Net``, ``/abs/models.py:Net`` or ``mypkg.nets:build``."""
    return isinstance(value, str) and REFERENCE.match(value) is not None


def split_reference(text: str) -> tuple[str, str]:
    found = REFERENCE.match(text)
    if found is None:
        raise ConfigError(
            f"'{text}' is not a reference to user code; write path.py:name or package.module:name"
        )
    return found["module"], found["attr"]


def is_file_reference(text: str) -> bool:
    return is_reference(text) and split_reference(text)[0].endswith(".py")


def absolute_reference(text: str, base: Path) -> str:
    """A file reference with its path made absolute against ``base`` (package references are
    left as they are)."""
    if not is_file_reference(text):
        return text
    module, attr = split_reference(text)
    path = Path(module).expanduser()
    if not path.is_absolute():
        path = (base / path).resolve()
    return f"{path}:{attr}"


def short_name(text: str) -> str:
    """The name a reference's component goes by in logs: ``metrics.py:dice`` → ``dice``."""
    return split_reference(text)[1].rsplit(".", 1)[-1] if is_reference(text) else text


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# objects given in Python (nntune.search.tune(cfg, model=build_net)) live in this module of this
# process only: a reference to them works like any other in every command run here
IN_PROCESS = "nntune_objects"


def register_object(obj: Any, what: str) -> str:
    """A reference to ``obj`` (a class, factory or function given in Python), valid in this
    process: configs can name it like code in a file."""
    module = sys.modules.get(IN_PROCESS)
    if module is None:
        module = sys.modules[IN_PROCESS] = ModuleType(IN_PROCESS, "objects given in Python")
    name = f"{_identifier(getattr(obj, '__name__', what))}_{id(obj):x}"
    setattr(module, name, obj)
    return f"{IN_PROCESS}:{name}"


def is_in_process(text: str) -> bool:
    return is_reference(text) and split_reference(text)[0] == IN_PROCESS


def source_label(text: str) -> str:
    """Where a reference's code is, for listings: its file, or 'a Python object'."""
    return "a Python object" if is_in_process(text) else str(source_file(text))


def code_digest(text: str, key: str = "") -> str:
    """What identifies a reference's code now: its file's sha256 (an object given in Python:
    its name, which holds its identity)."""
    return text if is_in_process(text) else file_hash(source_file(text, key))


def source_file(text: str, key: str = "") -> Path:
    """The file a reference's code comes from (a package module: its file, found without
    running it beyond its parent packages)."""
    module, _ = split_reference(text)
    if module.endswith(".py"):
        path = Path(module)
        if not path.is_file():
            raise ConfigError(f"{_where(key, text)}: file '{path}' not found")
        return path
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as err:
        raise ConfigError(f"{_where(key, text)}: cannot find module '{module}': {err}") from None
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        raise ConfigError(
            f"{_where(key, text)}: no module named '{module}' (is its package installed, or on "
            "PYTHONPATH?); a file next to the config is written path.py:name"
        )
    return Path(spec.origin)


# modules imported from files, by (path, sha256): a changed file is imported again
_FILE_MODULES: dict[tuple[str, str], ModuleType] = {}
# run folders' copies of package modules (code/<sha>/pkg.mod.py) → the module they copy, so that
# the copy's relative imports find its package
_PACKAGE_COPIES: dict[str, str] = {}


def code_key(text: str) -> str:
    """How a run records the code of a reference: the file's path, or the module's name."""
    module, _ = split_reference(text)
    return module


def copy_name(key: str, digest: str) -> str:
    """Where a run folder keeps its copy of ``key``'s file: ``code/<sha>/<name>.py``."""
    name = Path(key).name if key.endswith(".py") else f"{key}.py"
    return f"code/{digest[:12]}/{name}"


def use_copy(key: str, copy: Path) -> None:
    """A run folder's copy stands for ``key`` (a package module needs to know its package)."""
    if not key.endswith(".py"):
        _PACKAGE_COPIES[str(copy)] = key


def load_object(text: str, key: str = "") -> Any:
    """The object a reference names, imported (errors name ``key`` and the file)."""
    module_name, attr = split_reference(text)
    if module_name.endswith(".py"):
        module = _import_file(source_file(text, key), text, key)
    else:
        module = _import_module(module_name, text, key)
    found: Any = module
    for part in attr.split("."):
        if not hasattr(found, part):
            names = [n for n in dir(found) if not n.startswith("_")]
            raise ConfigError(
                f"{_where(key, text)}: '{getattr(module, '__file__', module_name)}' defines no "
                f"'{attr}'{did_you_mean(part, names)} (it defines: {', '.join(names[:20])})"
            )
        found = getattr(found, part)
    return found


def _import_file(path: Path, text: str, key: str) -> ModuleType:
    digest = file_hash(path)
    cached = _FILE_MODULES.get((str(path), digest))
    if cached is not None:
        return cached
    package = _PACKAGE_COPIES.get(str(path))
    if package is not None:  # a run folder's copy of a package's module: its own package
        parent = package.rpartition(".")[0]
        if parent:
            _import_module(parent, text, key)
        name = f"{parent}.nntune_copy_{digest[:12]}" if parent else f"nntune_copy_{digest[:12]}"
    else:
        name = f"nntune_user.{_identifier(path.stem)}_{digest[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{_where(key, text)}: '{path}' cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses, pickling and DataLoader workers look it up
    sys.path.insert(0, str(path.parent))  # the file's own imports of its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        sys.modules.pop(name, None)
        raise UserCodeError(
            f"{_where(key, text)}: importing '{path}' failed:\n{user_traceback(err)}"
        ) from None
    finally:
        sys.path.remove(str(path.parent))
    _FILE_MODULES[(str(path), digest)] = module
    return module


def _import_module(module_name: str, text: str, key: str) -> ModuleType:
    if module_name == IN_PROCESS and IN_PROCESS not in sys.modules:
        raise ConfigError(
            f"{_where(key, text)}: names an object given in Python to another process; pass "
            "the object again, or name its code as path.py:name"
        )
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            raise ConfigError(
                f"{_where(key, text)}: no module named '{err.name}' (is its package installed, "
                "or on PYTHONPATH?); a file next to the config is written path.py:name"
            ) from None
        raise UserCodeError(
            f"{_where(key, text)}: importing '{module_name}' failed:\n{user_traceback(err)}"
        ) from None
    except Exception as err:
        raise UserCodeError(
            f"{_where(key, text)}: importing '{module_name}' failed:\n{user_traceback(err)}"
        ) from None


def load_callable(text: str, key: str = "") -> Callable[..., Any]:
    """The callable a reference names (a class, a factory, a function)."""
    target = load_object(text, key)
    if not callable(target):
        raise ConfigError(f"{_where(key, text)}: {type(target).__name__} is not callable")
    return target


def user_traceback(err: BaseException) -> str:
    """The traceback of an error raised in user code, without nntune's own frames."""
    frames = [
        f
        for f in traceback.extract_tb(err.__traceback__)
        if "nntune" not in Path(f.filename).parts[-3:-1] and "importlib" not in f.filename
    ]
    lines = traceback.format_list(frames[-6:])
    lines += traceback.format_exception_only(type(err), err)
    return "".join(lines).rstrip()


def _identifier(text: str) -> str:
    return re.sub(r"\W", "_", text) or "module"


def _where(key: str, text: str) -> str:
    return f"{key} = '{text}'" if key else f"'{text}'"


# --- options from a signature ---------------------------------------------------------------


def parameters(fn: Callable[..., Any], skip: int = 0) -> list[inspect.Parameter]:
    """The parameters a callable takes by name (a class: its constructor's), after the first
    ``skip`` positional ones (the data a loss or metric is called with)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    found = [
        p
        for p in signature.parameters.values()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL,)
    ]
    positional = [
        p
        for p in found
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    skipped = {p.name for p in positional[:skip]}
    return [p for p in found if p.name not in skipped]


def takes(fn: Callable[..., Any], name: str, skip: int = 0) -> bool:
    """Whether ``fn`` accepts a keyword ``name`` (explicitly or through ``**kwargs``)."""
    params = parameters(fn, skip)
    return any(p.name == name for p in params) or any(
        p.kind == inspect.Parameter.VAR_KEYWORD for p in params
    )


def options_model(
    fn: Callable[..., Any], text: str, facts: Collection[str], skip: int = 0
) -> type[BaseModel]:
    """A pydantic model of the options ``fn`` takes: its parameters by name, with their defaults
    and (where pydantic understands them) their annotations, except ``facts``, which nntune
    fills itself. ``**kwargs`` allows any option; otherwise an unknown one is an error."""
    params = parameters(fn, skip)
    free = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params)
    try:
        hints = typing.get_type_hints(fn.__init__ if inspect.isclass(fn) else fn)
    except Exception:  # annotations that do not resolve: take any value
        hints = {}
    fields: dict[str, Any] = {}
    for p in params:
        if p.kind == inspect.Parameter.VAR_KEYWORD or p.name in facts:
            continue
        if p.name == "name":  # `name:` of a component is its reference, never an option
            if p.default is inspect.Parameter.empty:
                raise ConfigError(
                    f"'{text}': its parameter 'name' has no default, and a config cannot set "
                    "it (name: is the component's own key); give it a default or rename it"
                )
            continue
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[p.name] = (hints.get(p.name, Any), default)
    config = ConfigDict(extra="allow" if free else "forbid", arbitrary_types_allowed=True)
    name = f"Options_{_identifier(short_name(text))}"
    try:
        return create_model(name, __config__=config, **fields)
    except Exception:  # an annotation pydantic cannot check: check names and presence only
        loose = {k: (Any, default) for k, (_, default) in fields.items()}
        return create_model(name, __config__=config, **loose)  # type: ignore[call-overload]


def construct(
    target: Callable[..., Any],
    options: Mapping[str, Any],
    facts: Mapping[str, Any],
    text: str,
    key: str,
    kind: type,
    what: str,
) -> Any:
    """``call_with`` for a class or factory that must make a ``kind`` (named ``what`` in the
    error when it does not)."""
    made = call_with(target, options, facts, text, key)
    if not isinstance(made, kind):
        raise UserCodeError(f"{_where(key, text)}: it made a {type(made).__name__}, not {what}")
    return made


def call_with(
    fn: Callable[..., Any],
    options: Mapping[str, Any],
    facts: Mapping[str, Any],
    text: str,
    key: str,
    *args: Any,
) -> Any:
    """``fn(*args, **options, **facts it asks for)``; errors raised by the user's code name
    ``key`` and keep their traceback."""
    asked = {p.name for p in parameters(fn, len(args))}  # facts go only where asked by name
    given = {k: v for k, v in facts.items() if k in asked}
    try:
        return fn(*args, **given, **options)
    except Exception as err:
        raise UserCodeError(
            f"{_where(key, text)}: calling it failed:\n{user_traceback(err)}"
        ) from err
