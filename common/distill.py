"""Knowledge distillation of a language model's next-token distribution (Hinton et al., 2015): the
student matches the teacher's softened distribution,

    loss = tau^2 * mean over positions of KL( softmax(t / tau) || softmax(s / tau) ),

which at tau = 1 is the cross-entropy to the teacher's distribution minus its (constant) entropy:
"pure distillation", the setting of distillation_scaling_2025. Tested against the literal sum in
tests/reference/test_distill.py."""
from __future__ import annotations

import torch
from torch import nn


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Mean over positions (every dimension but the last) of tau^2 KL(teacher || student) at temperature tau;
    no gradient flows into the teacher."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ in shape")
    v = student_logits.shape[-1]
    s = nn.functional.log_softmax(student_logits.reshape(-1, v) / temperature, -1)
    t = nn.functional.log_softmax(teacher_logits.detach().reshape(-1, v) / temperature, -1)
    return temperature ** 2 * nn.functional.kl_div(s, t, log_target=True, reduction="batchmean")
