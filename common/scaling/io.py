"""Load a table of runs and check it before any fit: every required column present, the
positive columns positive and finite, enough rows. Errors name the file and the row (exit 2)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from optrepro.errors import ConfigError


def load_runs(path, required=(), positive=(), min_rows: int = 1, where: dict | None = None) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such data file")
    try:
        df = pd.read_csv(path)
    except Exception as e:  # noqa: BLE001 (any parse failure is bad input)
        raise ConfigError(f"{path}: not a readable CSV ({str(e).splitlines()[0]})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ConfigError(f"{path}: missing column(s) {', '.join(missing)}; has {', '.join(df.columns)}")
    for k, v in (where or {}).items():
        df = df[df[k] == v]
    for c in positive:
        col = pd.to_numeric(df[c], errors="coerce")
        bad = df.index[~(col > 0)]
        if len(bad):
            i = int(bad[0])
            raise ConfigError(f"{path}: line {i + 2}: column '{c}' must be positive, got {df.loc[i, c]}")
    if len(df) < min_rows:
        sel = f" matching {where}" if where else ""
        raise ConfigError(f"{path}: {len(df)} rows{sel}; the fit needs at least {min_rows}")
    return df.reset_index(drop=True)
