"""The benchmark is common.optim.algoperf: this paper adds no optimizer. See README.md."""
