"""common.dist pieces in one process: the worker split, the averaging and its byte count, data
parallelism against one large-batch step, the sharded batches, the multi-process checkpoint format,
and the task's configuration errors."""
import pytest
import torch
from torch import nn

from optrepro.data.text import CharCorpus
from optrepro.dist.comm import Comm
from optrepro.dist.localsgd import DataParallel, DiLoCo
from optrepro.dist.world import CheckpointSync, World, local_workers, worker_generator
from optrepro.errors import ConfigError

pytestmark = pytest.mark.unit


def test_workers_are_split_in_contiguous_blocks():
    assert local_workers(4, World(0, 2)) == [0, 1] and local_workers(4, World(1, 2)) == [2, 3]
    assert local_workers(3, World()) == [0, 1, 2]
    with pytest.raises(ConfigError, match="workers=3 cannot be split over 2"):
        local_workers(3, World(1, 2))
    # a worker's batches depend on the worker, never on the process hosting it
    a = torch.randint(0, 100, (5,), generator=worker_generator(7, 2, 11))
    b = torch.randint(0, 100, (5,), generator=worker_generator(7, 2, 11))
    c = torch.randint(0, 100, (5,), generator=worker_generator(7, 3, 11))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_mean_over_workers_and_its_bytes():
    g = torch.Generator().manual_seed(0)
    per = [[torch.randn(3, 4, generator=g), torch.randn(5, generator=g)] for _ in range(3)]
    comm = Comm(3, World())
    out = comm.mean(per)
    for i in range(2):
        expect = (per[0][i] + per[1][i] + per[2][i]) / 3
        assert torch.equal(out[i], expect) and out[i].shape == per[0][i].shape
    assert comm.bytes == 17 * 4 and comm.calls == 1
    assert comm.ring_bytes == pytest.approx(17 * 4 * 2 * 2 / 3)
    comm.mean_scalars([[1.0], [2.0], [3.0]])
    assert comm.bytes == 17 * 4 and comm.control_bytes == 8  # logging traffic is kept apart
    comm2 = Comm(1, World())
    comm2.load_state_dict(comm.state_dict())
    assert comm2.state_dict() == comm.state_dict()


def _net():
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))


def test_data_parallel_is_one_large_batch_step():
    g = torch.Generator().manual_seed(1)
    xs, ys = torch.randn(3, 6, 4, generator=g), torch.randint(0, 2, (3, 6), generator=g)
    loss = lambda m, x, y: nn.functional.cross_entropy(m(x), y)  # noqa: E731
    a, b = _net(), _net()
    dp = DataParallel(a, torch.optim.SGD(a.parameters(), lr=0.5), None, Comm(3, World()), [0, 1, 2])
    losses = dp.step(lambda w, m: loss(m, xs[w], ys[w]))
    opt = torch.optim.SGD(b.parameters(), lr=0.5)
    loss(b, xs.reshape(-1, 4), ys.reshape(-1)).backward()
    opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    assert len(losses) == 3 and dp.comm.calls == 1
    one = DataParallel(_net(), torch.optim.SGD(_net().parameters(), lr=0.1), None, Comm(1, World()), [0])
    one.step(lambda w, m: loss(m, xs[0], ys[0]))
    assert one.comm.bytes == 0  # a single worker sends nothing


def test_diloco_counts_one_all_reduce_per_round():
    m = _net()
    n = sum(p.numel() for p in m.parameters())
    alg = DiLoCo(m, lambda ps: (torch.optim.SGD(ps, lr=0.1), None), Comm(2, World()), [0, 1], 3)
    x = torch.randn(6, 4)
    for _ in range(7):
        alg.step(lambda w, r: r(x + w).pow(2).mean())
    assert alg.comm.calls == 2 and alg.comm.bytes == 2 * n * 4
    with pytest.raises(ValueError, match="sync_every"):
        DiLoCo(_net(), lambda ps: (torch.optim.SGD(ps, lr=0.1), None), Comm(2, World()), [0, 1], 0)


def test_sharded_batches_stay_in_their_part():
    c = CharCorpus(torch.arange(1000), torch.arange(100), list(range(1000)))
    g = torch.Generator().manual_seed(0)
    for i in range(4):
        x, y = c.batch("train", 32, 10, g, part=(i, 4))
        assert x.min() >= 250 * i and y.max() < 250 * (i + 1)
    with pytest.raises(ValueError, match="fewer than a window"):
        c.batch("train", 2, 300, g, part=(0, 4))


def test_multiprocess_checkpoint_entries():
    s = CheckpointSync(World(1, 2))
    assert s.unpack({"__ranks__": [{"a": 0}, {"a": 1}]}) == {"a": 1}
    with pytest.raises(ValueError, match="written by 3 processes, this run has 2"):
        s.unpack({"__ranks__": [{}, {}, {}]})
    with pytest.raises(ValueError, match="written by 1 processes"):
        s.unpack({"model": 1})


@pytest.mark.parametrize("change, msg", [
    ({"method": "ring"}, "method 'ring' unknown"),
    ({"data": "skewed"}, "data 'skewed' unknown"),
    ({"sync_every": 7}, "must be a multiple of sync_every"),
    ({"outer_momentum": 1.0}, "outer_momentum in [0, 1)"),
    ({"tokens": 10_000}, "tokens/flops budgets are not supported"),
])
def test_task_config_errors(change, msg):
    import dataclasses
    from optrepro.tasks.dist_lm import DistLMConfig, preflight
    cfg = dataclasses.replace(DistLMConfig(), **change)
    with pytest.raises(ConfigError) as e:
        preflight(cfg)
    assert msg in str(e.value)
