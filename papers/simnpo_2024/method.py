"""SimNPO (Fan, Liu, Lin, Jia, Zhang, Mei, Liu 2024, Eq. 4): NPO with SimPO's reward.

    L_SimNPO(θ) = E_(x,y)~forget [ -(2/β) log σ( -(β/|y|) log π_θ(y|x) - γ ) ] + λ E_retain[ -log π_θ(y|x) ]

What differs from NPO (papers/npo_2024): the reward (β/|y|) log π_θ is length-normalized and has
no reference model. NPO's reward β (log π_θ - log π_ref) makes an example's weight depend on how
likely the *reference* found it, so examples already unlikely under π_ref (long answers, whose
summed log-likelihood is low) keep a small weight and are under-forgotten: the "reference model
bias". γ ≥ 0 is a reward margin (γ = 0 in most of the paper's runs). As β -> 0 the gradient is a
length-normalized GA's: weight 2σ(-(β/|y|) log π - γ)/|y| per token.
Implementation: common.unlearn.losses (simnpo_loss; objective(method='simnpo'))."""
from optrepro.unlearn.losses import simnpo_loss as Method  # noqa: F401
