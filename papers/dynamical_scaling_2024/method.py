"""The model lives in common.scaling.random_features (shared with later scaling papers); this module
only names it."""
from optrepro.scaling.random_features import Solved, Theory, finite_data_curves, problem, simulate_gd

__all__ = ["Solved", "Theory", "finite_data_curves", "problem", "simulate_gd"]
