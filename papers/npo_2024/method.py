"""NPO (Zhang, Lin, Bai, Mei 2024, Eq. 3): DPO with only a negative (dispreferred) response.

    L_NPO(θ) = (2/β) E_(x,y)~forget [ log(1 + (π_θ(y|x) / π_ref(y|x))^β) ]
             = -(2/β) E [ log σ(-β (log π_θ(y|x) - log π_ref(y|x))) ]

π_ref is the model before unlearning (frozen), log π the summed log-likelihood of the answer.
Its gradient is GA's weighted per example by W = 2 π_θ^β / (π_θ^β + π_ref^β), which falls to 0 as
the example's likelihood drops below the reference: gradient ascent's divergence is tamed
(collapse slows from linear to logarithmic in the number of steps, Thm. 2). NPO+RT adds the retain
set's NLL, λ NLL(retain). As β -> 0, L_NPO -> GA's loss up to a constant.
Implementation: common.unlearn.losses (npo_loss; objective(method='npo' | 'npo_rt'))."""
from optrepro.unlearn.losses import npo_loss as Method  # noqa: F401
