"""Data, models, optimizer registry, schedules, atomic I/O: shapes and invariants."""
import pytest
import torch

from optrepro.optim.base import set_mode

from optrepro import data, models
from optrepro.errors import ConfigError, DataMissing
from optrepro.io import atomic_write_text
from optrepro.optim import OptimConfig, build_optimizer, lr_factor, registry

pytestmark = pytest.mark.unit


def test_digits_and_synthetic_shapes():
    s = data.load("digits")
    assert s.x_train.shape[1:] == (1, 8, 8) and s.num_classes == 10
    assert len(s.x_train) + len(s.x_test) == 1797
    s = data.load("synthetic")
    assert s.x_train.shape[1] == 20


def test_mnist1d_generated_offline():
    s = data.load("mnist1d")
    assert s.x_train.shape == (3200, 1, 40) and s.x_test.shape == (800, 1, 40)
    assert set(s.y_train.unique().tolist()) == set(range(10))


def test_full_scale_data_missing_says_what_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTREPRO_DATA", str(tmp_path))
    with pytest.raises(DataMissing, match="cifar-10-python.tar.gz"):
        data.core.check_available("cifar10")
    with pytest.raises(DataMissing, match="image-net.org"):
        data.core.check_available("imagenet")


def test_pydoc_corpus_is_english_text():
    c = data.CharCorpus.from_text(data.pydoc_text())
    assert len(c.train) > 300_000 and 50 < c.vocab_size < 200
    x, y = c.batch("train", 4, 16, torch.Generator().manual_seed(0))
    assert torch.equal(x[:, 1:], y[:, :-1])


@pytest.mark.parametrize("name", list(data.FUNCTIONS))
def test_toy_functions_minimal_at_optimum(name):
    f = data.FUNCTIONS[name]
    opt = torch.tensor(f.optimum, dtype=torch.float64)
    assert float(f(opt)) == pytest.approx(0.0, abs=1e-12)
    for d in ([1e-3, 0], [0, -1e-3], [1e-3, 1e-3]):
        assert float(f(opt + torch.tensor(d, dtype=torch.float64))) > 0


@pytest.mark.parametrize("name,shape", [("mlp", (1, 8, 8)), ("cnn", (1, 8, 8)), ("cnn", (1, 40)),
                                        ("resnet20", (3, 32, 32))])
def test_model_output_shapes(name, shape):
    m = models.build(name, shape, 10)
    assert m(torch.randn(2, *shape)).shape == (2, 10)


def test_tiny_gpt_logits():
    m = models.tiny_gpt(vocab_size=30, context=16)
    assert m(torch.randint(0, 30, (2, 16))).shape == (2, 16, 30)


def test_every_registered_optimizer_builds_and_steps():
    for name in registry():
        p = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))  # DoG's first step is ~1e-8
        opt = build_optimizer([p], OptimConfig(name=name, lr=1e-2, momentum=0.9))
        set_mode(opt, True)  # schedule-free and averaged optimizers step in train mode
        p.grad = torch.ones(3, dtype=torch.float64)
        opt.step()
        assert torch.all(p < 1), name


def test_bad_optimizer_name_and_kwarg():
    with pytest.raises(ConfigError, match="did you mean adabelief"):
        build_optimizer([torch.nn.Parameter(torch.ones(1))], OptimConfig(name="adabelif"))
    with pytest.raises(ConfigError, match="not an argument"):
        build_optimizer([torch.nn.Parameter(torch.ones(1))], OptimConfig(name="adam", kwargs={"foo": 1}))


def test_schedules():
    oc = OptimConfig(schedule="cosine", warmup_steps=10)
    assert lr_factor(oc, 0, 100) == pytest.approx(0.1) and lr_factor(oc, 10, 100) == pytest.approx(1.0)
    assert lr_factor(oc, 100, 100) == pytest.approx(0.0, abs=1e-12)
    oc = OptimConfig(schedule="step", milestones=[0.5])
    assert lr_factor(oc, 49, 100) == 1.0 and lr_factor(oc, 50, 100) == pytest.approx(0.1)
    with pytest.raises(ConfigError):
        lr_factor(OptimConfig(schedule="weird"), 0, 10)


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "r.json"
    atomic_write_text(p, "old")

    def crash(fd):  # the new bytes are written, the sync before the rename fails
        raise OSError("disk gone")
    monkeypatch.setattr("optrepro.io.os.fsync", crash)
    with pytest.raises(OSError, match="disk gone"):
        atomic_write_text(p, "new")
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["r.json"]
