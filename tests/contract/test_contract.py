"""Every paper against the contract, parametrized over the registry (a new paper is covered
without editing this file), plus `repro new` on a copy of the repository."""
import shutil

import pytest

from optrepro.contract import check_common, check_paper
from optrepro.registry import all_papers
from tests.conftest import ROOT, paper_tables, repro_subprocess

pytestmark = pytest.mark.contract


@pytest.mark.parametrize("pid", list(all_papers()))
def test_paper_follows_contract(pid):
    assert check_paper(all_papers()[pid]) == []


def test_common_never_imports_papers():
    assert check_common() == []


@pytest.mark.parametrize("pid,table", paper_tables())
def test_table_has_all_scales_and_a_mini_claim(pid, table):
    paper = all_papers()[pid]
    spec = paper.load_table(table)
    needed = any(table in paper.load_table(u).needs for u in paper.tables)  # a sweep: claims are on its fit
    assert any(c.scale == "mini" for c in spec.claims) or needed
    assert set(spec.scales) == {"smoke", "mini", "full"}


def test_check_flags_a_broken_paper(tmp_path):
    """`repro check` exits 1 and names the problem when a paper breaks the contract."""
    repo = _copy_repo(tmp_path)
    (repo / "papers" / "lion_2023" / "README.md").unlink()
    (repo / "papers" / "lion_2023" / "experiment.py").write_text(
        (repo / "papers" / "lion_2023" / "experiment.py").read_text() + "\nimport papers.adabelief_2020.method\n")
    r = repro_subprocess("check", cwd=repo, env=_env(repo))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "missing papers/lion_2023/README.md" in r.stdout
    assert "imports papers.adabelief_2020" in r.stdout


def test_repro_new_passes_check_and_smoke(tmp_path):
    """`repro new` makes a package that passes `repro check` and a smoke run, without edits (for a pid
    no real paper will take: the example must not collide with a paper added later)."""
    repo = _copy_repo(tmp_path)
    env = _env(repo)
    r = repro_subprocess("new", "newmethod_2099", "--family", "second-order", "--title", "New Method",
                         cwd=repo, env=env)
    assert r.returncode == 0, r.stderr
    assert (repo / "papers" / "newmethod_2099" / "method.py").exists()
    r = repro_subprocess("check", cwd=repo, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    r = repro_subprocess("run", "newmethod_2099", "--scale", "smoke", "--out", tmp_path / "runs", cwd=repo, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    r = repro_subprocess("compare", "newmethod_2099", "--scale", "smoke", "--out", tmp_path / "runs",
                         "--reports", tmp_path / "rep", cwd=repo, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "rep" / "newmethod_2099" / "toy.md").exists()
    r = repro_subprocess("new", "newmethod_2099", "--family", "second-order", cwd=repo, env=env)
    assert r.returncode == 2 and "already exists" in r.stderr
    r = repro_subprocess("new", "Bad-Name", "--family", "optimizer", cwd=repo, env=env)
    assert r.returncode == 2 and "snake_case" in r.stderr


def _copy_repo(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for d in ("common", "papers", "configs", "envs"):
        shutil.copytree(ROOT / d, repo / d, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    (tmp_path / "path").mkdir()
    (tmp_path / "path" / "optrepro").symlink_to(repo / "common")  # what an editable install maps
    return repo


def _env(repo):
    """Import `optrepro` from the copy, not from this checkout's editable install."""
    return {"PYTHONPATH": str(repo.parent / "path")}


def test_paper_readme_results_blocks_match_their_reports():
    """Every paper README's generated block equals what `repro report` writes from reports/ (a stale
    block would show verdicts that are no longer true)."""
    from optrepro.registry import all_papers
    from optrepro.report.compare import update_paper_readme
    stale = []
    for paper in all_papers().values():
        readme = paper.dir / "README.md"
        before = readme.read_text()
        try:
            update_paper_readme(paper)
            if readme.read_text() != before:
                stale.append(paper.pid)
        finally:
            readme.write_text(before)
    assert not stale, f"run `repro report`: stale results blocks in {stale}"


def test_markdown_links_stay_inside_the_repository():
    """A clone has only this repository: every relative link in README.md, the paper READMEs and the
    reports points at a file that exists inside it (web links are fine)."""
    import re
    bad = []
    files = [ROOT / "README.md", *ROOT.glob("papers/[!_]*/README.md"), *ROOT.glob("reports/**/*.md")]
    for f in files:
        for target in re.findall(r"\]\(([^)\s]+)\)", f.read_text()):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            p = (f.parent / target.split("#", 1)[0]).resolve()
            if not p.is_relative_to(ROOT.resolve()) or not p.exists():
                bad.append(f"{f.relative_to(ROOT)}: {target}")
    assert not bad, bad
