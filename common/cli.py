"""The `repro` command. Exit codes: 0 ok; 1 a run failed (or `check` found violations);
2 usage or config error, one line on stderr, no traceback."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from optrepro.errors import ConfigError, Interrupted, UsageError

USAGE_EXIT, FAIL_EXIT = 2, 1


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, exit 2
        self.exit(USAGE_EXIT, f"repro: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="repro", description="Reproduce optimization-for-ML papers: run, compare, add.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    s = sub.add_parser("list", help="papers: pid, family, title, tables, what is reproduced")
    s.add_argument("--family")
    s.add_argument("--optimizers", action="store_true",
                   help="every optimizer name (common.optim.create_optimizer), who registers it, its class")

    s = sub.add_parser("show", help="a paper's metadata, tables, reported numbers and claims")
    s.add_argument("pid")

    s = sub.add_parser("run", help="run a table's rows x seeds")
    s.add_argument("pid")
    s.add_argument("table", nargs="?")
    s.add_argument("overrides", nargs="*", help="config overrides: key=value (e.g. optim.lr=3e-4), +key=value; "
                                                "key=a,b with -m. A run with overrides is stored as <row>@<hash>")
    s.add_argument("-m", "--multirun", action="store_true",
                   help="sweep: key=a,b,c runs each value (the product over several keys)")
    s.add_argument("--scale", default="mini", choices=["smoke", "mini", "full"])
    s.add_argument("--seeds", help="comma-separated, e.g. 0,1,2 (default: the config's)")
    s.add_argument("--rows", help="comma-separated subset of rows")
    s.add_argument("--resume", action="store_true", help="continue killed runs, skip finished ones")
    s.add_argument("--out", default="runs")
    s.add_argument("--jobs", type=int, default=1)
    s.add_argument("--launcher", default="local", choices=["local", "slurm", "torchrun"],
                   help="slurm: one submitit job per run (needs sbatch, or REPRO_SUBMITIT_CLUSTER=local|debug); "
                        "torchrun: each run over --nproc processes (distributed experiments, e.g. diloco_2023)")
    s.add_argument("--nproc", type=int, help="torchrun: processes per run (default 2); the run's workers are split over them")
    s.add_argument("--partition", help="slurm: the partition")
    s.add_argument("--gpus", type=int, help="slurm: GPUs per job")
    s.add_argument("--mem-gb", type=float, help="slurm: memory per job, GB")
    s.add_argument("--timeout-min", type=int, help="slurm: time limit per job in minutes (default 60)")

    s = sub.add_parser("compare", help="write reports/<pid>/<table>.{md,json,png}; --recheck re-verdicts "
                                       "committed reports from their stored per-seed values")
    s.add_argument("pid", nargs="?", help="(with --recheck: omit for every paper)")
    s.add_argument("table", nargs="?")
    s.add_argument("overrides", nargs="*", help="the overrides the runs were made with (key=value ...)")
    s.add_argument("--scale", default="mini", choices=["smoke", "mini", "full"])
    s.add_argument("--out", default="runs", help="where the runs are")
    s.add_argument("--reports", default=None,
                   help="where to write reports (default: reports/ for mini/full runs without overrides, "
                        "else <out>/reports/)")
    s.add_argument("--all", action="store_true", help="every table of the paper")
    s.add_argument("--recheck", action="store_true",
                   help="re-verdict committed reports under today's claims and rules, without rerunning")
    s.add_argument("--check", action="store_true", help="with --recheck: write nothing, exit 1 if a report would change")
    s.add_argument("--allow-dirty", action="store_true",
                   help="write into reports/ even from uncommitted code (the report says it is not clean)")

    sub.add_parser("report", help="regenerate reports/README.md, every paper README's results block and the "
                                  "bar figures (from the report JSONs)")

    s = sub.add_parser("new", help="copy papers/_template for a new paper")
    s.add_argument("pid")
    s.add_argument("--family", required=True)
    s.add_argument("--title", default="")

    sub.add_parser("check", help="lint every paper against the contract")

    s = sub.add_parser("bench", help="time one optimizer step (`repro bench optimizers`), measure ZO memory "
                                     "and time against inference (`repro bench zo`), a training step's time "
                                     "and memory with second-order optimizers (`repro bench second-order`), or every "
                                     "optimizer's state bytes and step peak memory (`repro bench memory`)")
    s.add_argument("what", choices=["optimizers", "zo", "second-order", "memory"])
    s.add_argument("--device", default="cpu", help="zo, second-order, memory: cpu or cuda")
    s.add_argument("--model", default="cnn", help="second-order: cnn or mlp")
    s.add_argument("--d-model", type=int, default=512, help="zo: width of the byte-level GPT-2 (8 layers)")
    s.add_argument("--only", default=None, help="comma-separated optimizer names (default: every paper's)")
    s.add_argument("--steps", type=int, default=30, help="timed steps per optimizer")
    s.add_argument("--repeat", type=int, default=1, help="optimizers: run the whole bench N times, report medians")
    s.add_argument("--write", default=None, help="also write the markdown table here "
                                                 "(e.g. reports/bench/optimizers.md)")
    return p


def _split(s):
    return [x.strip() for x in s.split(",") if x.strip()] if s else None


def _list_flag(s, flag: str):
    """A comma-separated flag's items; None when the flag was not given. Given but empty (`--rows ''`,
    `--rows ,`) is an error, not 'all'."""
    if s is None:
        return None
    items = [x.strip() for x in s.split(",")]
    if not any(items) or not all(items):
        raise UsageError(f"{flag} takes names separated by commas, got '{s}'")
    if len(set(items)) < len(items):
        raise UsageError(f"{flag} names something twice: '{s}'")
    return items


def _seeds(s):
    items = _list_flag(s, "--seeds")
    if items is None:
        return None
    try:
        seeds = [int(x) for x in items]
    except ValueError:
        raise UsageError(f"--seeds takes integers separated by commas, got '{s}'") from None
    if any(x < 0 for x in seeds):
        raise UsageError(f"--seeds must be >= 0, got '{s}'")
    return seeds


def check_out_dir(path) -> None:
    """--out must be a directory this user can write (or creatable inside one): checked before any run."""
    import os
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"--out {path} is a file, not a directory")
    probe = p
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"--out {path}: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"--out {path}: {probe} is not writable")


def cmd_list(a):
    from optrepro.registry import FAMILIES, all_papers
    from optrepro.config import closest
    if a.optimizers:
        from optrepro.optim import describe
        rows = describe()
        w = max(len(r[0]) for r in rows)
        v = max(len(r[1]) for r in rows)
        print(f"{'name':<{w}}  {'registered by':<{v}}  class")
        for n, who, path in rows:
            print(f"{n:<{w}}  {who:<{v}}  {path}")
        return 0
    if a.family and a.family not in FAMILIES:
        raise UsageError(f"unknown family '{a.family}'{closest(a.family, FAMILIES)}; valid: {', '.join(FAMILIES)}")
    papers = [p for p in all_papers().values() if not a.family or p.family == a.family]
    w = max([len(p.pid) for p in papers] + [3])
    print(f"{'pid':<{w}}  {'family':<14}  {'tables':<28}  title / reproduced")
    for p in papers:
        print(f"{p.pid:<{w}}  {p.family:<14}  {','.join(p.tables):<28}  {p.title}")
        print(f"{'':<{w}}  {'':<14}  {'':<28}  -> {p.meta.get('reproduces', '')}")
    return 0


def cmd_show(a):
    from optrepro.config import run_rows
    from optrepro.registry import get_paper
    from optrepro.report.reported import load
    p = get_paper(a.pid)
    m = p.meta
    print(f"{p.pid}: {m.get('title')}\n  {m.get('venue')} {m.get('year')}  arXiv:{m.get('arxiv')}  family: {p.family}")
    print(f"  code: {m.get('code')}\n  reproduces: {m.get('reproduces')}")
    for d in m.get("deviations") or []:
        print(f"  deviation: {d}")
    rep = load(p.dir / "reported.csv") if (p.dir / "reported.csv").exists() else []
    for t in p.tables:
        spec = p.load_table(t)
        print(f"\n[{t}] {p.caption(t)}\n  rows: {', '.join(spec.rows)}\n  metrics: {', '.join(spec.metrics)}")
        for sc in ("smoke", "mini", "full"):
            ss = spec.scales[sc]
            print(f"  {sc}: rows {','.join(run_rows(spec, sc))}; seeds {ss.seeds or spec.seeds}; set {ss.set}")
        for r in [r for r in rep if r.table == t]:
            print(f"  paper: {r.row} {r.column} {r.metric} = {r.value:g} [{r.kind}] ({r.source})")
        last = _last_verdicts(p.pid, t)
        for c in spec.claims:
            print(f"  claim {c.id} [{c.scale}, {c.type}]: {c.text}")
            if c.id in last:
                print(f"    last verdict: {last[c.id]}")
        if last.get(""):
            print(f"  report: {last['']}")
    return 0


def _last_verdicts(pid: str, table: str) -> dict:
    """claim id -> 'PASS: detail (mini, 2026-11-30)' from the committed report; '' -> its path."""
    import json
    from optrepro import ROOT
    from optrepro.report.compare import verdict_label
    j = ROOT / "reports" / pid / f"{table}.json"
    if not j.exists():
        return {"": "none committed yet"}
    doc = json.loads(j.read_text())
    out = {c["id"]: f"{verdict_label(c)}: {c.get('detail', '')} ({doc['scale']}, {doc.get('generated', '?')})"
           for c in doc.get("claims", [])}
    out[""] = f"reports/{pid}/{table}.md ({doc['scale']} scale, generated {doc.get('generated', '?')})"
    return out


def _is_override(arg: str) -> bool:
    return "=" in arg or arg[:1] in ("~", "+")


def _slurm_options(a) -> dict:
    """submitit parameters from --partition/--gpus/--mem-gb/--timeout-min (only with --launcher slurm)."""
    given = {"--partition": a.partition, "--gpus": a.gpus, "--mem-gb": a.mem_gb, "--timeout-min": a.timeout_min}
    given = {k: v for k, v in given.items() if v is not None}
    if a.launcher != "slurm":
        if given:
            raise UsageError(f"{', '.join(given)} only apply with --launcher slurm")
        return {}
    from optrepro.run import slurm_cluster
    slurm_cluster()  # no sbatch and no REPRO_SUBMITIT_CLUSTER: exit 2 before anything runs
    if given.get("--gpus", 0) < 0:
        raise UsageError(f"--gpus must be >= 0, got {given['--gpus']}")
    for flag in ("--mem-gb", "--timeout-min"):
        if flag in given and not given[flag] > 0:
            raise UsageError(f"{flag} must be > 0, got {given[flag]}")
    names = {"--partition": "slurm_partition", "--gpus": "gpus_per_node", "--mem-gb": "mem_gb",
             "--timeout-min": "timeout_min"}
    return {names[k]: v for k, v in given.items()}


def _nproc(a, paper, spec, jobs) -> int:
    """--nproc (torchrun only; default 2), checked against the table before anything runs."""
    if a.launcher != "torchrun":
        if a.nproc is not None:
            raise UsageError("--nproc only applies with --launcher torchrun")
        return 1
    if a.jobs > 1:
        raise UsageError("--jobs does not combine with --launcher torchrun (each run already uses --nproc processes)")
    if spec.needs:
        raise UsageError("--launcher torchrun runs one table's runs; this table needs another table's runs first")
    nproc = 2 if a.nproc is None else a.nproc
    from optrepro.dist.launch import check_jobs
    check_jobs(paper, spec, jobs, nproc)
    return nproc


def cmd_run(a):
    from optrepro import overrides as ov
    from optrepro.registry import get_paper
    from optrepro.run import plan, run_jobs
    paper = get_paper(a.pid)
    if a.table and _is_override(a.table):  # `repro run pid key=value`: no table given
        a.overrides, a.table = [a.table] + a.overrides, None
    table = paper.resolve_table(a.table)
    if a.table is None and len(paper.tables) > 1:
        others = ", ".join(t for t in paper.tables if t != table)
        print(f"repro: no table named: running {paper.pid}'s first, {table} (also: {others}; name one to run it)",
              file=sys.stderr)
    if a.jobs < 1:
        raise UsageError("--jobs must be >= 1")
    rows, seeds = _list_flag(a.rows, "--rows"), _seeds(a.seeds)
    check_out_dir(a.out)
    slurm = _slurm_options(a)
    spec = paper.load_table(table)
    override_sets = ov.parse(a.overrides, a.multirun)
    jobs = [j for o in override_sets for j in plan(paper, table, spec, a.scale, seeds, rows, o, Path(a.out), a.resume)]
    nproc = _nproc(a, paper, spec, jobs)
    for need in spec.needs:  # e.g. a fit table needs its sweep: run it first, keeping finished points
        nspec = paper.load_table(paper.resolve_table(need))
        njobs = plan(paper, need, nspec, a.scale, None, None, {}, Path(a.out), resume=True)
        print(f"repro: {paper.pid}/{table} needs {need}: {len(njobs)} runs at {a.scale} scale "
              f"(finished ones are kept) -> {a.out}/{paper.pid}/{need}/{a.scale}/", flush=True)
        nres = run_jobs(njobs, a.jobs, a.launcher, Path(a.out), slurm=slurm)
        bad = [r for r in nres if r.get("status") != "ok"]
        if bad:
            print(f"repro: {len(bad)} of {need}'s runs did not finish ok (the analysis uses the others)", flush=True)
    sets = f" x {len(override_sets)} override sets" if len(override_sets) > 1 else ""
    print(f"repro: {paper.pid}/{table} at {a.scale} scale: {len(jobs)} runs "
          f"({len({j.row for j in jobs})} rows x {len({j.seed for j in jobs})} seeds{sets}) "
          f"-> {a.out}/{paper.pid}/{table}/{a.scale}/", flush=True)
    if a.jobs > 1 and a.launcher == "local":
        print(f"repro: --jobs {a.jobs} runs each job in a fresh process, which imports torch and compiles its "
              f"fused optimizer steps again (seconds each): it pays off for runs longer than that", flush=True)
    for o in override_sets:
        if o:
            print(f"repro: overrides {ov.describe(o)} -> runs <row>{ov.variant(o)}/", flush=True)

    from optrepro.run import SweepProgress
    sweep = SweepProgress(len(jobs))

    def show(job, r):
        ms = r.get("metrics") or {}
        main = [m for m in spec.metrics if m in ms][:3]
        desc = ", ".join(f"{m}={ms[m]:.4g}" for m in main if isinstance(ms[m], (int, float)))
        extra = f" step {r['step']}" if "step" in r else ""
        err = f" ({r.get('error', '')})" if r.get("status") != "ok" else ""
        sweep.emit(f"  {sweep.tick()} {r.get('status', '?'):<8} {job.row}{job.variant}/seed{job.seed}{extra}  "
                   f"{desc}{err}")

    try:
        if a.launcher == "torchrun":
            from optrepro.dist.launch import run_torchrun
            results = run_torchrun(jobs, nproc, on_result=show)
        else:
            results = run_jobs(jobs, a.jobs, a.launcher, Path(a.out), on_result=show, slurm=slurm)
    finally:
        sweep.close()
    failed = [r for r in results if r.get("status") == "failed"]
    div = [r for r in results if r.get("status") == "diverged"]
    if hasattr(paper.experiment, "report_extra") and len(results) > len(failed) and len(override_sets) == 1:
        # tables ranked across rows (the optimizer benchmark) print their ranking after the runs
        from optrepro.report.compare import compare
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            doc = compare(paper, table, a.scale, Path(a.out), Path(tmp), overrides=override_sets[0])
        print("\n".join(line for line in doc.get("extra", []) if not line.startswith("![")))
    print(f"repro: {len(results) - len(failed) - len(div)} ok, {len(div)} diverged, {len(failed)} failed. "
          f"Next: repro compare {paper.pid} {table} --scale {a.scale}" + (f" --out {a.out}" if a.out != "runs" else ""))
    return FAIL_EXIT if failed else 0


def cmd_compare(a):
    from optrepro.registry import all_papers, get_paper
    from optrepro.report.compare import compare, index, recheck
    if a.recheck:
        papers = [get_paper(a.pid)] if a.pid else list(all_papers().values())
        changes = []
        for paper in papers:
            tables = [paper.resolve_table(a.table)] if a.table else paper.tables
            for t in tables:
                changes += recheck(paper, t, a.reports, write=not a.check)
        print("\n".join(changes) if changes else "repro: every report's verdicts stand under today's rules")
        if changes and not a.check and not a.reports:
            from optrepro.report.compare import update_paper_readme
            for paper in papers:
                update_paper_readme(paper)
            index()
        return FAIL_EXIT if (changes and a.check) else 0
    if not a.pid:
        raise UsageError("compare needs a paper id (or --recheck for every paper)")
    from optrepro import overrides as ov
    from optrepro.report.compare import destination
    paper = get_paper(a.pid)
    if a.table and _is_override(a.table):
        a.overrides, a.table = [a.table] + a.overrides, None
    sets = ov.parse(a.overrides)
    tables = paper.tables if a.all else [paper.resolve_table(a.table)]
    wrote_committed = False
    for t in tables:
        where, why = destination(paper, t, a.scale, Path(a.out), a.reports, sets[0])
        compare(paper, t, a.scale, Path(a.out), where, allow_dirty=a.allow_dirty, overrides=sets[0])
        dest = where / paper.pid / f"{t}.md"
        print(dest.read_text())
        print(f"repro: wrote {dest} (+ .json, .png)" + (f"; not reports/: {why}" if why else ""))
        wrote_committed |= not a.reports and not why
    if wrote_committed:
        from optrepro.report.compare import update_paper_readme
        update_paper_readme(paper)
        index()
    return 0


def cmd_report(a):
    from optrepro.registry import all_papers
    from optrepro.report.compare import index, redraw_bar_figure, update_paper_readme
    for paper in all_papers().values():
        update_paper_readme(paper)
        for t in paper.tables:
            redraw_bar_figure(paper, t)
    print(index())
    return 0


def cmd_new(a):
    from optrepro import IS_CHECKOUT
    if not IS_CHECKOUT:
        raise UsageError("repro new writes papers/ and configs/ of a checkout: clone the repository and "
                         "run it there (this is an installed copy)")
    from optrepro.scaffold import new_paper
    for path in new_paper(a.pid, a.family, a.title):
        print(f"created {path}")
    print(f"Next: edit papers/{a.pid}/method.py and configs/{a.pid}/, then `repro check` and "
          f"`repro run {a.pid} --scale smoke`.")
    return 0


def cmd_check(a):
    from optrepro.contract import check_all
    problems = check_all()
    for pid, errs in problems.items():
        for e in errs:
            print(f"{pid}: {e}")
    n = sum(len(v) for v in problems.values())
    from optrepro.registry import all_papers
    print(f"repro check: {len(all_papers())} papers, {n} problem(s)")
    return FAIL_EXIT if n else 0


def cmd_bench(a):
    from optrepro.meta import hardware
    if a.what == "zo":
        return _bench_zo(a, hardware)
    if a.what == "second-order":
        return _bench_second_order(a, hardware)
    if a.what == "memory":
        return _bench_memory(a, hardware)
    from optrepro.optim import bench, registry
    names = _split(a.only)
    if names:
        unknown = [n for n in names if n not in registry()]
        if unknown:
            raise UsageError(f"unknown optimizer(s) {', '.join(unknown)}; valid: {', '.join(sorted(registry()))}")
    if a.steps < 1 or a.repeat < 1:
        raise UsageError("--steps and --repeat must be >= 1")
    md = bench.markdown(bench.median_of([bench.run(names, a.steps) for _ in range(a.repeat)]), hardware())
    print(md)
    if a.write:
        from optrepro.io import atomic_write_text
        atomic_write_text(Path(a.write), md)
    return 0


def _check_device(device: str) -> None:
    import torch
    if device not in ("cpu", "cuda"):
        raise UsageError(f"--device must be cpu or cuda, got {device}")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device here")


def _bench_memory(a, hardware):
    from optrepro.optim import memory_bench, registry
    _check_device(a.device)
    names = _split(a.only)
    unknown = [n for n in names or [] if n not in registry()]
    if unknown:
        raise UsageError(f"unknown optimizer(s) {', '.join(unknown)}; valid: {', '.join(sorted(registry()))}")
    md = memory_bench.markdown(memory_bench.run(names, a.device), hardware(), a.device)
    print(md)
    if a.write:
        from optrepro.io import atomic_write_text
        atomic_write_text(Path(a.write), md)
    return 0


def _bench_second_order(a, hardware):
    from optrepro.curvature import bench
    _check_device(a.device)
    if a.model not in ("cnn", "mlp"):
        raise UsageError(f"--model must be cnn or mlp, got {a.model}")
    if a.steps < 1:
        raise UsageError("--steps must be >= 1")
    md = bench.markdown(bench.run(_split(a.only), a.model, a.steps, a.device), hardware(), a.model, a.device)
    print(md)
    if a.write:
        from optrepro.io import atomic_write_text
        atomic_write_text(Path(a.write), md)
    return 0


def _bench_zo(a, hardware):
    from optrepro.zo import bench
    _check_device(a.device)
    if a.steps < 1 or a.d_model < 8 or a.d_model % 8:
        raise UsageError("--steps must be >= 1 and --d-model a multiple of 8")
    spec = {"d_model": a.d_model}
    md = bench.markdown(bench.run(spec=spec, reps=min(a.steps, 5), device=a.device), spec, hardware(), a.device)
    print(md)
    if a.write:
        from optrepro.io import atomic_write_text
        atomic_write_text(Path(a.write), md)
    return 0


COMMANDS = {"list": cmd_list, "show": cmd_show, "run": cmd_run, "compare": cmd_compare,
            "report": cmd_report, "new": cmd_new, "check": cmd_check, "bench": cmd_bench}


def main(argv=None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # key=value overrides may come after the options: `repro run pid --scale mini lr=1`
        if args.cmd in ("run", "compare") and all(_is_override(e) and not e.startswith("-") for e in extra):
            args.overrides = list(args.overrides) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return COMMANDS[args.cmd](args)
    except (UsageError, ConfigError) as e:
        msg = str(e)
        print(f"repro: error: {msg}", file=sys.stderr)
        return USAGE_EXIT
    except Interrupted as e:
        print(f"repro: interrupted: {e}. Continue with --resume.", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("repro: interrupted. Continue with --resume.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
