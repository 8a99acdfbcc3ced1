"""`papers/<pid>/reported.csv`: the paper's numbers, one per line, each with its source.

Columns: table,row,column,metric,value,std,higher_is_better,tolerance,kind,source
- kind: reported (in the paper) | third_party (official repo results, others) | unverified (from
  memory, not yet checked). Reports mark the last two.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

COLUMNS = ["table", "row", "column", "metric", "value", "std", "higher_is_better", "tolerance", "kind", "source"]
KINDS = ("reported", "third_party", "unverified")


@dataclass
class Reported:
    table: str
    row: str
    column: str
    metric: str
    value: float
    std: float | None
    higher_is_better: bool
    tolerance: float | None
    kind: str
    source: str


def _float(s: str, what: str, line: int, allow_empty: bool = False):
    if s.strip() == "" and allow_empty:
        return None
    try:
        v = float(s)
    except ValueError:
        raise ValueError(f"line {line}: {what} '{s}' is not a number") from None
    if not math.isfinite(v):
        raise ValueError(f"line {line}: {what} is not finite")
    return v


def load(path: Path) -> list[Reported]:
    """Parse and validate; raises ValueError with the line number on any problem."""
    rows = []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != COLUMNS:
            raise ValueError(f"header must be {','.join(COLUMNS)}; got {','.join(header or [])}")
        for i, rec in enumerate(reader, start=2):
            if not rec or all(not c.strip() for c in rec):
                continue
            if len(rec) != len(COLUMNS):
                raise ValueError(f"line {i}: {len(rec)} fields, expected {len(COLUMNS)}")
            d = dict(zip(COLUMNS, rec))
            if d["kind"] not in KINDS:
                raise ValueError(f"line {i}: kind '{d['kind']}' not in {', '.join(KINDS)}")
            if d["higher_is_better"].lower() not in ("true", "false"):
                raise ValueError(f"line {i}: higher_is_better must be true or false")
            if not d["source"].strip():
                raise ValueError(f"line {i}: every number needs a source")
            for k in ("table", "row", "metric"):
                if not d[k].strip():
                    raise ValueError(f"line {i}: empty '{k}'")
            rows.append(Reported(
                d["table"], d["row"], d["column"], d["metric"], _float(d["value"], "value", i),
                _float(d["std"], "std", i, True), d["higher_is_better"].lower() == "true",
                _float(d["tolerance"], "tolerance", i, True), d["kind"], d["source"]))
    return rows


def for_table(path: Path, table: str) -> list[Reported]:
    return [r for r in load(path) if r.table == table] if Path(path).exists() else []
