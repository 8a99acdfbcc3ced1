"""Dr. GRPO (Liu et al. 2025): GRPO without its two biases. GRPO divides each completion's summed token
loss by its length |o| (so a wrong, negatively rewarded completion is penalised less per token the longer it
is) and divides advantages by the group's reward std (weighting questions by how easy or hard they are).
Dr. GRPO drops both: advantages are reward minus the group mean, and token losses are summed and divided by
a constant (completions x max completion length). The losses and advantages are common.rl.lmrl's
(`policy_loss` with loss_type grpo / dr_grpo, `group_advantages` with scale group / none), tested equal to
trl's GRPOTrainer."""
from optrepro.rl.lmrl import group_advantages, policy_loss  # noqa: F401
from optrepro.rl.lmrl import policy_loss as Method  # noqa: F401
