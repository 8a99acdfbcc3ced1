"""One rank of a torchrun-launched run: `python -m optrepro.dist.entry <job.pkl> <result.json>`
(common.dist.launch starts it). Joins the process group, runs the job through the same
`optrepro.run.execute` a single process uses (rank 0 writes), leaves the process group."""
from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path


def main(argv=None) -> int:
    from optrepro.dist import world as W
    from optrepro.dist.launch import INTERRUPTED_EXIT
    from optrepro.errors import Interrupted
    from optrepro.run import execute
    job_file, out_file = (argv or sys.argv[1:])[:2]
    job = pickle.loads(Path(job_file).read_bytes())
    w = W.init(getattr(job.cfg, "device", "cpu"))
    code = 0
    try:
        res = execute(job)
        if w.main:
            Path(out_file).write_text(json.dumps(res))
        code = 1 if res.get("status") == "failed" else 0
    except Interrupted as e:
        if w.main:  # the launcher tells an interrupted run (checkpoint written) from a failed one
            Path(out_file).write_text(json.dumps({"status": "interrupted", "error": str(e)}))
        code = INTERRUPTED_EXIT
    finally:
        if code == 0:
            W.teardown()
    return code


if __name__ == "__main__":
    sys.exit(main())
