"""Reusable experiment bodies (one row, one seed) that papers' experiment.py files call:
classify (image/signal classification), charlm (a tiny GPT on pydoc text), toy2d (2-D test functions),
bilevel (hypergradients and bilevel algorithms on common.bilevel problems), guidance (guided
diffusion / flow sampling and its sample-quality metrics), logreg (badly scaled logistic regression
for the Polyak-step papers), dist_lm (the tiny GPT trained by M workers: data parallel or DiLoCo,
simulated or under torchrun)."""


def preflight(cfg) -> None:
    """Checks before anything runs (data on disk, optimizer arguments), for any task's config."""
    from optrepro.tasks import bilevel, charlm, classify, dist_lm, guidance, logreg, toy2d
    for mod, cls in ((dist_lm, dist_lm.DistLMConfig), (classify, classify.ClassifyConfig), (charlm, charlm.CharLMConfig), (toy2d, toy2d.Toy2DConfig),
                     (bilevel, bilevel.BilevelConfig), (guidance, guidance.GuidanceConfig),
                     (logreg, logreg.LogRegConfig)):
        if isinstance(cfg, cls):
            return mod.preflight(cfg)
    raise TypeError(f"no task preflight for {type(cfg).__name__}")
