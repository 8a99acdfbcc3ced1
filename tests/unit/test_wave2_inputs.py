"""Bad input to this stop's shared pieces (CFG++, the LM-RL helpers, the GFlowNet grid) is a ConfigError
(exit 2 from the CLI) with a message naming the valid choices, never a traceback."""
import pytest
import torch

from optrepro.diffusion.guidance import make_rule
from optrepro.errors import ConfigError
from optrepro.rl.gflownet import HyperGrid
from optrepro.rl.lmrl import Arithmetic, group_advantages, policy_loss

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("call, needle", [
    (lambda: make_rule("cfgpp", -1.0), "guidance scale"),
    (lambda: make_rule("cfgpp", 0.5, {"bogus": 1}), "bad arguments"),
    (lambda: group_advantages(torch.ones(4), 2, "std"), "group, batch, none"),
    (lambda: policy_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1), "ppo", 2), "dr_grpo"),
    (lambda: Arithmetic(max_operand=1), "max_operand"),
    (lambda: Arithmetic(fill="middle"), "before, after"),
    (lambda: HyperGrid(side=1), "side >= 2"),
    (lambda: HyperGrid(band=0.5), "band"),
])
def test_bad_input_is_a_config_error(call, needle):
    with pytest.raises(ConfigError, match=needle):
        call()


def test_cfgpp_always_needs_the_unconditional_branch():
    rule = make_rule("cfgpp", 1.0)  # w = 1 still re-noises with ε_u
    assert rule.needs_uncond and rule.needs_cond and rule.renoise == "uncond"
    assert make_rule("cfg", 1.0).renoise == "guided"


def test_group_advantages_shapes_and_zero_mean():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    for scale in ("group", "batch", "none"):
        a = group_advantages(r, 4, scale)
        assert a.shape == r.shape and torch.allclose(a.reshape(2, 4).sum(1), torch.zeros(2), atol=1e-6)
    assert torch.equal(group_advantages(r, 4, "none")[4:], torch.zeros(4))  # a constant group teaches nothing
