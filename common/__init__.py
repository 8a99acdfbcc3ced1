"""optrepro: the shared library (this folder, common/, is the importable package `optrepro`).

    import optrepro
    opt = optrepro.create_optimizer("lion", model.parameters(), lr=1e-4)

The repository's folders map onto one distribution: common/ -> `optrepro`, papers/ ->
`optrepro.papers`, envs/ -> `optrepro.envs`, configs/ -> `optrepro.configs` (data). A checkout and an
installed wheel give the same names; in a checkout the mapping is made here, in a wheel by its layout.
Never imports from papers/ (papers are discovered by name)."""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_CHECKOUT = (_HERE.parent / "pyproject.toml").is_file() and (_HERE.parent / "papers").is_dir()
ROOT = _HERE.parent if _CHECKOUT else _HERE
"""Where papers/, configs/ (and, in a checkout, reports/) are: the repository root in a checkout, the
installed package's folder otherwise."""
IS_CHECKOUT = _CHECKOUT
"""True in a git checkout (reports/ is there to write); False for an installed wheel."""

SUBPACKAGES = ("papers", "envs", "configs")
"""Repository folders that are subpackages of optrepro."""


class _SiblingFinder(importlib.abc.MetaPathFinder):
    """In a checkout, `optrepro.papers` / `optrepro.envs` / `optrepro.configs` are the folders beside
    common/ (a wheel nests them inside optrepro/ instead)."""

    def find_spec(self, fullname, path=None, target=None):
        head, _, name = fullname.partition(".")
        if head != __name__ or name not in SUBPACKAGES:
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, [str(ROOT)])


if _CHECKOUT and not any(isinstance(f, _SiblingFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _SiblingFinder())


def module_name(name: str) -> str:
    """A module named by its repository path (`common.tasks.charlm`, `papers.lion_2023.method`,
    `envs.lqr`), as configs and paper.yaml name them, -> its import name (`optrepro.tasks.charlm`, ...)."""
    head, _, rest = name.partition(".")
    if head == "common":
        return f"{__name__}.{rest}" if rest else __name__
    if head in SUBPACKAGES:
        return f"{__name__}.{name}"
    return name


def import_target(target: str):
    """`module:attr` (module as in `module_name`) -> the object."""
    mod, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name(mod)), attr)


def create_optimizer(name: str, params, **kwargs):
    """Any registered optimizer by name, case-insensitive (`repro list --optimizers`)."""
    from optrepro.optim import create_optimizer as create
    return create(name, params, **kwargs)


def list_optimizers() -> list[str]:
    """Every name `create_optimizer` accepts."""
    from optrepro.optim import registry
    return sorted(registry())
