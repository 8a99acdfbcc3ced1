"""Command-line overrides: the grammar, sweeps over comma lists, and the identity they give a run.

Grammar (the subset of Hydra's that people type):
  key=value          set a config key (dotted for nested keys: optim.lr=3e-4); YAML values
                     (1e-3, true, [1, 2], {name: lion, lr: 1e-4})
  +key=value         the same (Hydra's "add"; every key of a typed config already exists)
  ++key=value        the same (Hydra's "add or override")
  key=a,b,c          with -m / --multirun: one run set per value (the product over several keys);
                     without -m it is an error, so a comma never silently becomes a string
  ~key               not supported (a typed config cannot lose a key): exit 2 saying so

A run with overrides is a different run: its directory is `<row>@<hash>` (`hash` = 8 hex digits of
the canonical overrides), result.json records them, and `repro compare` with the same overrides
reads those runs and writes its report under --out, never into the committed reports/."""
from __future__ import annotations

import functools
import hashlib
import itertools
import json
import re

from optrepro.errors import UsageError

SYNTAX = "key=value, +key=value, ++key=value, and key=a,b,c with -m"
_KEY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def _split_top(value: str) -> list[str]:
    """Split at commas outside brackets, braces and quotes."""
    parts, depth, quote, cur = [], 0, None, ""
    for ch in value:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    return parts + [cur]


@functools.lru_cache(maxsize=1)
def _loader():
    """YAML's safe loader reading 1e-3 as a float (YAML 1.1 needs a dot: 1.0e-3), as configs do."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*\.?[0-9_]*(?:[eE][-+]?[0-9]+)|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
                   r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|[-+]?[0-9][0-9_]*\.[0-9_]*)$"),
        list("-+0123456789."))
    return Loader


def _value(key: str, text: str):
    import yaml
    try:
        return yaml.load(text, Loader=_loader()) if text.strip() else ""
    except yaml.YAMLError as e:
        raise UsageError(f"override {key}={text}: not a YAML value ({str(e).splitlines()[0]})") from None


def _nest(flat: dict) -> dict:
    out: dict = {}
    for key, v in flat.items():
        d = out
        *head, last = key.split(".")
        for h in head:
            if not isinstance(d.setdefault(h, {}), dict):
                raise UsageError(f"override {key}: {h} is set to a value and used as a mapping")
            d = d[h]
        if isinstance(d.get(last), dict) and isinstance(v, dict):
            d[last].update(v)
        else:
            d[last] = v
    return out


def parse(items: list[str], multirun: bool = False) -> list[dict]:
    """The override sets `items` ask for: one nested dict, or (with `multirun`) one per point of the
    product of the comma lists. Raises UsageError (exit 2) naming the supported syntax."""
    axes: list[tuple[str, list]] = []
    seen = set()
    for it in items:
        if it.startswith("~"):
            raise UsageError(f"override '{it}': removing a key is not supported (configs are typed); "
                             f"set it instead. Supported: {SYNTAX}")
        body = it[2:] if it.startswith("++") else it[1:] if it.startswith("+") else it
        if "=" not in body:
            raise UsageError(f"override '{it}' is not key=value (e.g. optim.lr=3e-4). Supported: {SYNTAX}")
        key, text = body.split("=", 1)
        if not _KEY.match(key):
            raise UsageError(f"override '{it}': '{key}' is not a config key (letters, digits, _ and dots). "
                             f"Supported: {SYNTAX}")
        if key == "seed":
            raise UsageError(f"override '{it}': the seed comes from --seeds (e.g. --seeds {text or 0})")
        if key in seen:
            raise UsageError(f"override '{key}' given twice")
        seen.add(key)
        parts = _split_top(text)
        if len(parts) > 1 and not multirun:
            raise UsageError(f"override '{it}' lists several values: pass -m to run each of them "
                             f"(or quote a string that contains a comma)")
        axes.append((key, [_value(key, p) for p in parts]))
    if not axes:
        return [{}]
    keys = [k for k, _ in axes]
    return [_nest(dict(zip(keys, combo))) for combo in itertools.product(*(v for _, v in axes))]


def flat(overrides: dict, prefix: str = "") -> dict:
    """{'optim': {'lr': 1}} -> {'optim.lr': 1}."""
    out = {}
    for k, v in overrides.items():
        if isinstance(v, dict) and v:
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


NEUTRAL = ("tracker", "ckpt_every")
"""Keys that change how a run is logged or checkpointed, never its numbers: not part of its identity
(`tracker=wandb` writes the same run directory as the plain run; result.json still records them)."""


def variant(overrides: dict) -> str:
    """'' for no overrides, else '@' + 8 hex digits of the canonical overrides (a run-dir suffix)."""
    keyed = {k: v for k, v in flat(overrides).items() if k not in NEUTRAL}
    if not keyed:
        return ""
    canon = json.dumps(keyed, sort_keys=True, default=str)
    return "@" + hashlib.sha256(canon.encode()).hexdigest()[:8]


def describe(overrides: dict) -> str:
    """'optim.lr=0.001 optim.name=lion' (sorted), for logs and report headers."""
    return " ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
                    for k, v in sorted(flat(overrides).items()))
