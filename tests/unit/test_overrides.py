"""The command-line override grammar (common.overrides): what it accepts, what it refuses, and the
identity (`<row>@<hash>`) it gives a run."""
import pytest

from optrepro import overrides as ov
from optrepro.errors import UsageError

pytestmark = pytest.mark.unit


def test_plain_plus_and_plusplus_set_nested_keys_with_yaml_values():
    assert ov.parse(["optim.lr=1e-3", "+train.steps=7", "++optim.name=lion", "flag=true"]) == [
        {"optim": {"lr": 1e-3, "name": "lion"}, "train": {"steps": 7}, "flag": True}]
    assert ov.parse(["optim={name: lion, lr: 0.0001}"]) == [{"optim": {"name": "lion", "lr": 1e-4}}]
    assert ov.parse(["optim.betas=[0.9, 0.99]"]) == [{"optim": {"betas": [0.9, 0.99]}}]
    assert ov.parse([]) == [{}]


def test_multirun_is_the_product_of_comma_lists():
    sets = ov.parse(["optim.lr=0.1,0.01", "optim.name=adam,sgd,lion", "steps=5"], multirun=True)
    assert len(sets) == 6 and len({ov.variant(s) for s in sets}) == 6
    assert {(s["optim"]["lr"], s["optim"]["name"]) for s in sets} == {
        (lr, n) for lr in (0.1, 0.01) for n in ("adam", "sgd", "lion")}
    assert all(s["steps"] == 5 for s in sets)
    # a comma inside brackets is one value
    assert ov.parse(["optim.betas=[0.9,0.99]"], multirun=True) == [{"optim": {"betas": [0.9, 0.99]}}]


@pytest.mark.parametrize("items,needle", [
    (["optim.lr=0.1,0.01"], "pass -m"),
    (["~optim.lr"], "removing a key is not supported"),
    (["nokey"], "is not key=value"),
    (["=1"], "is not a config key"),
    (["optim..lr=1"], "is not a config key"),
    (["seed=5"], "the seed comes from --seeds"),
    (["optim.lr=1", "optim.lr=2"], "given twice"),
    (["optim.lr=[1,"], "not a YAML value"),
    (["optim=1", "optim.lr=2"], "used as a mapping"),
])
def test_refusals_name_the_supported_syntax(items, needle):
    with pytest.raises(UsageError, match=needle.replace(".", r"\.")):
        ov.parse(items)


def test_variant_is_canonical_and_empty_without_overrides():
    assert ov.variant({}) == ""
    a = ov.parse(["optim.lr=0.1", "optim.name=lion"])[0]
    b = ov.parse(["optim.name=lion", "optim={lr: 0.1}"])[0]
    assert ov.variant(a) == ov.variant(b) and ov.variant(a).startswith("@") and len(ov.variant(a)) == 9
    assert ov.variant(a) != ov.variant(ov.parse(["optim.lr=0.2", "optim.name=lion"])[0])
    assert ov.describe(a) == "optim.lr=0.1 optim.name=lion"
    # logging and checkpointing keys do not make another run
    assert ov.variant(ov.parse(["tracker=wandb", "ckpt_every=5"])[0]) == ""
    assert ov.variant(ov.parse(["tracker=wandb", "optim.lr=0.1", "optim.name=lion"])[0]) == ov.variant(a)
