"""INNAprop's tables run shared tasks, named in their configs:

- digits: image classification, INNAprop vs AdamW (common.tasks.classify), the CIFAR-10 analogue
- lm:     language modeling, a tiny GPT-2 on pydoc text (common.tasks.charlm), the GPT-2 analogue

The optimizer `innaprop` comes from method.py through paper.yaml's `optimizers:` entry."""
