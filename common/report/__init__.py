"""reported.csv schema, claims, `repro compare` (markdown + JSON + figure) and the reports index."""
