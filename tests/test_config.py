"""Config: defaults, component forms, --set overrides, errors, paths, YAML round trip, schema."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nntune.config import (
    Component,
    Config,
    config_json_schema,
    config_to_dict,
    config_to_yaml,
    load_config,
    parse_override,
)
from nntune.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mnist1d.yaml"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults and component forms -----------------------------------------------------------


def test_defaults_follow_the_contract() -> None:
    config = load_config({})
    assert config.seed == 0
    assert config.data.dataset == "mnist1d"
    assert config.data.task == "auto"
    assert config.data.limit is None
    assert config.data.val_split == 0.2 and config.data.test_split == 0.2
    assert [c.name for c in config.data.preprocess] == ["standardize"]
    assert config.data.augment == []
    assert config.model.arch.name == "mlp"
    assert config.model.hidden == [128, 128]
    assert config.model.activation.name == "relu"
    assert config.model.norm == "none"
    assert config.model.dropout == 0.0
    assert config.model.residual is False
    assert config.model.init.name == "default"
    assert config.optimizer.name == "adam"
    assert config.optimizer.options["lr"] == pytest.approx(1e-3)
    assert config.schedule.name == "constant"
    assert config.regularization.l1 == 0.0 and config.regularization.l2 == 0.0
    assert config.train.epochs == 20 and config.train.batch_size == 64
    assert config.train.grad_clip is None and config.train.early_stopping is None
    assert config.train.accumulate == 1 and config.train.threads is None


def test_bare_name_and_mapping_components() -> None:
    config = load_config(
        {
            "optimizer": "sgd",
            "schedule": {"name": "cosine", "warmup": 0.05},
            "loss": {"name": "focal", "gamma": 2.0},
            "data": {"preprocess": ["impute", {"name": "winsorize", "limits": 0.05}]},
            "model": {"init": {"name": "normal", "std": 0.01}},
        }
    )
    assert config.optimizer == Component(name="sgd")
    assert config.optimizer.options == {}
    assert config.schedule.name == "cosine"
    assert config.schedule.options == {"warmup": 0.05}
    assert config.loss.options == {"gamma": 2.0}
    assert [c.name for c in config.data.preprocess] == ["impute", "winsorize"]
    assert config.data.preprocess[1].options == {"limits": 0.05}
    assert config.model.init.options == {"std": 0.01}


def test_components_dump_in_user_form() -> None:
    dumped = config_to_dict(load_config({"optimizer": "sgd", "schedule": {"name": "step"}}))
    assert dumped["optimizer"] == "sgd"
    assert dumped["schedule"] == "step"
    dumped = config_to_dict(load_config({"optimizer": {"name": "sgd", "lr": 0.5}}))
    assert dumped["optimizer"] == {"name": "sgd", "lr": 0.5}


def test_component_mapping_without_name_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"optimizer.*name"):
        load_config({"optimizer": {"lr": 0.1}})


# --- --set overrides ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("model.hidden=[64,64]", "model.hidden", [64, 64]),
        ("optimizer.lr=3e-3", "optimizer.lr", 3e-3),
        ("optimizer.lr=3.0e-3", "optimizer.lr", 3e-3),
        ("train.epochs=5", "train.epochs", 5),
        ("model.residual=true", "model.residual", True),
        ("optimizer=sgd", "optimizer", "sgd"),
        ("schedule={name: cosine, warmup: 10}", "schedule", {"name": "cosine", "warmup": 10}),
        ("train.grad_clip=null", "train.grad_clip", None),
    ],
)
def test_parse_override_reads_yaml_values(text: str, key: str, value: object) -> None:
    parsed_key, parsed = parse_override(text)
    assert parsed_key == key
    assert parsed == value
    assert type(parsed) is type(value)


def test_parse_override_without_equals_is_an_error() -> None:
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("optimizer.lr")


def test_overrides_set_dotted_keys() -> None:
    config = load_config(
        {"model": {"hidden": [8]}},
        ["model.hidden=[64,64]", "optimizer.lr=3e-3", "train.epochs=5", "data.dataset=iris"],
    )
    assert config.model.hidden == [64, 64]
    assert config.optimizer.options["lr"] == pytest.approx(0.003)
    assert isinstance(config.optimizer.options["lr"], float)
    assert config.train.epochs == 5
    assert config.data.dataset == "iris"


def test_override_option_on_bare_name_component() -> None:
    config = load_config({"optimizer": "adam"}, ["optimizer.lr=0.01"])
    assert config.optimizer.name == "adam"
    assert config.optimizer.options == {"lr": 0.01}
    config = load_config({"model": {"arch": "cnn1d"}}, ["model.arch.kernel_size=3"])
    assert config.model.arch == Component(name="cnn1d", options={"kernel_size": 3})


def test_override_option_on_default_component() -> None:
    # the optimizer is not in the file: the option applies to the default (adam)
    config = load_config({}, ["optimizer.lr=0.01"])
    assert config.optimizer.name == "adam"
    assert config.optimizer.options["lr"] == pytest.approx(0.01)


def test_overrides_as_mapping() -> None:
    config = load_config({}, {"train.batch_size": 16, "model.norm": "batch"})
    assert config.train.batch_size == 16
    assert config.model.norm == "batch"


def test_override_into_a_scalar_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        load_config({}, ["train.epochs.x=1"])


# --- errors ---------------------------------------------------------------------------------


def test_unknown_key_suggests_the_closest() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"model": {"hiden": [8]}})
    message = str(info.value)
    assert "model.hiden" in message
    assert "did you mean 'model.hidden'" in message


def test_unknown_top_level_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"optimiser": "adam"})
    assert "optimiser" in str(info.value)
    assert "did you mean 'optimizer'" in str(info.value)


def test_unknown_key_via_override() -> None:
    with pytest.raises(ConfigError, match=r"train\.epoch.*did you mean 'train\.epochs'"):
        load_config({}, ["train.epoch=3"])


def test_wrong_type_names_key_and_value() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"train": {"epochs": "many"}})
    assert "train.epochs" in str(info.value)
    assert "many" in str(info.value)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"train": {"epochs": 0}}, "train.epochs"),
        ({"model": {"dropout": 1.5}}, "model.dropout"),
        ({"data": {"val_split": -0.1}}, "data.val_split"),
        ({"regularization": {"l2": -1.0}}, "regularization.l2"),
        ({"model": {"hidden": [16, 0]}}, "model.hidden"),
        ({"model": {"norm": "group"}}, "model.norm"),
        ({"train": {"grad_clip": {"norm": 1.0, "value": 1.0}}}, "train.grad_clip"),
    ],
)
def test_out_of_range_value_names_the_key(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(raw)


def test_several_problems_are_all_reported() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"train": {"epochs": 0, "batch_size": 0}})
    assert "train.epochs" in str(info.value)
    assert "train.batch_size" in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="not found") as info:
        load_config(missing)
    assert "nope.yaml" in str(info.value)


def test_invalid_yaml(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "model: {hidden: [1, 2\n  arch: mlp\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_config(path)
    assert "bad.yaml" in str(info.value)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_non_mapping_yaml(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "list.yaml", text)
    with pytest.raises(ConfigError, match="mapping") as info:
        load_config(path)
    assert "list.yaml" in str(info.value)


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "empty.yaml", ""))
    assert config.model.arch.name == "mlp"
    assert config.name == "empty"


# --- paths and names ------------------------------------------------------------------------


def test_relative_data_path_is_resolved_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "project" / "configs"
    folder.mkdir(parents=True)
    path = write(folder / "run.yaml", "data:\n  dataset: data/table.csv\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(path)
    assert Path(config.data.dataset) == (folder / "data" / "table.csv").resolve()
    # the same with a relative path to the config itself
    config = load_config(Path("..") / "project" / "configs" / "run.yaml")
    assert Path(config.data.dataset) == (folder / "data" / "table.csv").resolve()


def test_builtin_dataset_name_is_not_a_path(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "c.yaml", "data: {dataset: iris}\n"))
    assert config.data.dataset == "iris"


def test_absolute_data_path_is_kept(tmp_path: Path) -> None:
    table = tmp_path / "abs.csv"
    config = load_config(write(tmp_path / "c.yaml", f"data: {{dataset: '{table}'}}\n"))
    assert Path(config.data.dataset) == table


def test_name_defaults_to_the_config_file_stem(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "my-experiment.yaml", "seed: 3\n"))
    assert config.name == "my-experiment"
    config = load_config(write(tmp_path / "named.yaml", "name: chosen\n"))
    assert config.name == "chosen"


# --- YAML round trip and schema -------------------------------------------------------------


def test_config_to_yaml_round_trips(tmp_path: Path) -> None:
    original = load_config(
        EXAMPLE,
        [
            "train.early_stopping={patience: 3}",
            "train.grad_clip={norm: 1.0}",
            "regularization.l2=1e-4",
            "data.preprocess=[impute, {name: winsorize, limits: 0.05}, standardize]",
        ],
    )
    text = config_to_yaml(original)
    assert isinstance(yaml.safe_load(text), dict)
    reloaded = load_config(write(tmp_path / "saved.yaml", text))
    assert reloaded == original
    assert config_to_yaml(reloaded) == text


def test_config_to_yaml_round_trips_defaults(tmp_path: Path) -> None:
    original = load_config({})
    reloaded = load_config(write(tmp_path / "defaults.yaml", config_to_yaml(original)))
    assert reloaded == original


def test_load_config_accepts_a_config() -> None:
    original = load_config(EXAMPLE)
    epochs_before = original.train.epochs
    assert epochs_before != 2
    again = load_config(original, ["train.epochs=2"])
    assert isinstance(again, Config)
    assert again.train.epochs == 2
    assert again.model == original.model
    assert original.train.epochs == epochs_before  # the source is not modified


def test_json_schema_is_valid_and_accepts_the_example() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = config_json_schema()
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    example = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    validator_cls(schema).validate(example)
    validator_cls(schema).validate(config_to_dict(load_config(EXAMPLE)))


def test_json_schema_rejects_what_the_config_rejects() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = config_json_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert not validator.is_valid({"model": {"hiden": [8]}})
    assert not validator.is_valid({"train": {"epochs": 0}})
    assert not validator.is_valid({"optimizer": {"lr": 0.1}})  # a mapping needs name:
    assert validator.is_valid({"optimizer": "sgd", "schedule": {"name": "cosine", "warmup": 5}})


def test_json_schema_with_component_names() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from nntune.data import AUGMENT, PREPROCESS
    from nntune.losses import LOSSES
    from nntune.models import ACTIVATIONS, ARCHS, INITS
    from nntune.optim import OPTIMIZERS, SCHEDULES

    names = {
        "optimizers": OPTIMIZERS.list(),
        "schedules": SCHEDULES.list(),
        "losses": LOSSES.list(),
        "archs": ARCHS.list(),
        "activations": ACTIVATIONS.list(),
        "inits": INITS.list(),
        "preprocess": PREPROCESS.list(),
        "augment": AUGMENT.list(),
    }
    schema = config_json_schema(names)
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    validator = validator_cls(schema)
    validator.validate(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))
    assert not validator.is_valid({"optimizer": "adma"})
    assert not validator.is_valid({"data": {"preprocess": [{"name": "standardise"}]}})
    assert validator.is_valid({"data": {"preprocess": ["standardize", {"name": "onehot"}]}})


def test_early_stopping_true_asks_for_the_defaults() -> None:
    config = load_config({"train": {"early_stopping": True}})
    assert config.train.early_stopping is not None
    assert config.train.early_stopping.patience == 10
    assert config.train.early_stopping.monitor == "val_loss"


def test_component_in_a_list_without_name() -> None:
    with pytest.raises(ConfigError, match=r"data\.preprocess\[0\].*name"):
        load_config({"data": {"preprocess": [{"strategy": "mean"}]}})
