"""optrepro shared library. Never imports from papers/ (papers are discovered by name)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
"""Repository root: holds papers/, configs/, reports/."""
