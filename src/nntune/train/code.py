"""User code and run folders: hashes in config.yaml, copies in ``code/``, and trust.

A config that names user code (``models.py:Net``) is a command the user chose to run, so its
code is imported. The run folder records the sha256 of every such file under ``code:`` in
config.yaml and keeps a copy of it in ``code/<sha>/``; training a recorded config again
(``--resume``, ``nntune train best.yaml``) checks that the files are unchanged and names those
that are not.

A run folder may come from someone else: commands that load one (evaluate, report, serve,
export, compress, ensemble, ``nntune.load_run``) import the code it names only when the user
trusts it (``--trust-code``, ``trust_code=True``), and then from the folder's own copies.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

from nntune.config import Config, config_to_dict, reference_places, validate_config
from nntune.errors import ConfigError, RunFolderError
from nntune.usercode import (
    code_key,
    copy_name,
    file_hash,
    is_in_process,
    source_file,
    use_copy,
)


class UntrustedCodeError(RunFolderError):
    """A run folder names user code and the user did not say to trust it."""


def code_hashes(config: Config) -> dict[str, str]:
    """``{path or module: sha256}`` of the user files ``config`` names, as they are now."""
    found: dict[str, str] = {}
    for key, container, index in _file_places(config_to_dict(config)):
        reference = container[index]
        found[code_key(reference)] = file_hash(source_file(reference, key))
    return found


def _file_places(config: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """The references to code in files (objects given in Python have none to hash or copy,
    and nothing to import: they are the objects themselves, in this process only)."""
    return [p for p in reference_places(config) if not is_in_process(p[1][p[2]])]


def check_code(config: Config) -> Config:
    """``config`` with ``code:`` holding the hashes of its user files; a file that changed
    since the config recorded it is an error naming it."""
    now = code_hashes(config)
    changed = [
        (key, config.code[key], digest)
        for key, digest in now.items()
        if key in config.code and config.code[key] != digest
    ]
    if changed:
        shown = "; ".join(f"'{k}' (sha256 {a[:12]}… then, {b[:12]}… now)" for k, a, b in changed)
        raise ConfigError(
            f"code: {shown} changed since this config was written, so training it would not "
            "give the run it records; restore the file, or delete its line under code: in the "
            "config to train with the file as it is now"
        )
    if now == config.code:
        return config
    raw = config_to_dict(config)
    raw["code"] = now
    return validate_config(raw)


def write_code(run_dir: Path, config: Config) -> None:
    """Copy the user files of ``config`` (hashed by check_code) into ``run_dir/code/``."""
    for key, container, index in _file_places(config_to_dict(config)):
        reference = container[index]
        name = code_key(reference)
        digest = config.code.get(name)
        if digest is None:
            continue
        target = run_dir / copy_name(name, digest)
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(source_file(reference, key), temporary)
        temporary.replace(target)


def trusted_meta(meta: dict[str, Any], run_dir: Path, trust_code: bool) -> dict[str, Any]:
    """A checkpoint's meta with its config (and fitted preprocessing) pointing at the run
    folder's copies of the user code it names; refused without ``trust_code``."""
    config = trusted_config(meta["config"], run_dir, trust_code)
    if config == meta["config"]:
        return meta
    moved = dict(_pairs(meta["config"], config))
    pipeline = copy.deepcopy(meta.get("pipeline"))
    for step in (pipeline or {}).get("steps", []):
        step["name"] = moved.get(step["name"], step["name"])
    return {**meta, "config": config, "pipeline": pipeline}


def _pairs(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, str]]:
    old = [c[i] for _, c, i in _file_places(before)]
    new = [c[i] for _, c, i in _file_places(after)]
    return list(zip(old, new, strict=True))


def trusted_config(config: dict[str, Any], run_dir: Path, trust_code: bool) -> dict[str, Any]:
    """A run folder's config with its references pointing at the folder's own copies of the
    code; without ``trust_code`` a folder that names user code is refused, naming the files."""
    config = copy.deepcopy(config)
    places = _file_places(config)
    if not places:
        return config
    recorded: dict[str, str] = dict(config.get("code") or {})
    if not trust_code:
        files = sorted({code_key(c[i]) for _, c, i in places})
        shown = ", ".join(f"{Path(f).name} (sha256 {recorded.get(f, '?')[:12]}…)" for f in files)
        raise UntrustedCodeError(
            f"run '{run_dir}' names user code: {shown}; nntune imports a run folder's code only "
            "when you trust it: add --trust-code (Python: trust_code=True), which runs the "
            f"folder's own copies in {run_dir / 'code'}"
        )
    copies: dict[str, str] = {}
    for key, container, index in places:
        name, attr = code_key(container[index]), container[index].rsplit(":", 1)[1]
        digest = recorded.get(name)
        if digest is None:
            raise RunFolderError(
                f"run '{run_dir}': {key} names {name}, which code: does not record"
            )
        kept = run_dir / copy_name(name, digest)
        if not kept.exists():
            raise RunFolderError(f"run '{run_dir}': its copy of {name} ({kept}) is missing")
        if file_hash(kept) != digest:
            raise RunFolderError(
                f"run '{run_dir}': {kept} is not the code the run recorded (its sha256 differs)"
            )
        use_copy(name, kept)
        container[index] = f"{kept}:{attr}"
        copies[str(kept)] = digest
    config["code"] = copies
    return config
