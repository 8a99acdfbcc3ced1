"""Reusable experiment bodies (one row, one seed) that papers' experiment.py files call:
classify (image/signal classification), charlm (a tiny GPT on pydoc text), toy2d (2-D test functions)."""
