"""Offline datasets (mini and smoke scales) and full-scale loaders (fail clearly when absent).

Every loader returns a `Split` of tensors; nothing here downloads anything."""
from optrepro.data.core import DATASETS, Split, data_root, load
from optrepro.data.text import CharCorpus, pydoc_text
from optrepro.data.toy2d import FUNCTIONS, TestFunction

__all__ = ["DATASETS", "Split", "data_root", "load", "CharCorpus", "pydoc_text", "FUNCTIONS", "TestFunction"]
