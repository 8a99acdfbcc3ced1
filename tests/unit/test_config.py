import pytest

from optrepro.config import BaseConfig, build_config, parse_table
from optrepro.overrides import parse as parse_overrides
from optrepro.errors import ConfigError
from optrepro.tasks.classify import ClassifyConfig

pytestmark = pytest.mark.unit


def test_layers_merge_in_order():
    cfg = build_config(ClassifyConfig, [("base", {"optim": {"lr": 0.1}}), ("row", {"optim": {"name": "sgd"}}),
                                        ("cli", parse_overrides(["optim.lr=0.5", "train.steps=7"])[0])])
    assert (cfg.optim.name, cfg.optim.lr, cfg.train.steps) == ("sgd", 0.5, 7)
    assert isinstance(cfg, ClassifyConfig) and isinstance(cfg, BaseConfig)


def test_unknown_key_names_key_and_valid_keys():
    with pytest.raises(ConfigError) as e:
        build_config(ClassifyConfig, [("command line", {"optim": {"lrr": 1}})])
    msg = str(e.value)
    assert "optim.lrr" in msg and "did you mean lr" in msg and "valid keys under optim" in msg


def test_unknown_top_level_key():
    with pytest.raises(ConfigError, match="unknown config key 'stpes'"):
        build_config(ClassifyConfig, [("x", {"stpes": 3})])


def test_wrong_type():
    with pytest.raises(ConfigError, match="train.steps"):
        build_config(ClassifyConfig, [("x", {"train": {"steps": "many"}})])


def test_table_requires_all_scales_and_known_rows():
    base = {"rows": {"a": {}}, "metrics": {"m": {}}, "scales": {"smoke": {}, "mini": {}}}
    with pytest.raises(ConfigError, match="scales.full"):
        parse_table(base, "t.yaml")
    base["scales"]["full"] = {"rows": ["b"]}
    with pytest.raises(ConfigError, match="unknown row 'b'"):
        parse_table(base, "t.yaml")
    base["scales"]["full"] = {}
    base["rowz"] = {}
    with pytest.raises(ConfigError, match="rowz"):
        parse_table(base, "t.yaml")
