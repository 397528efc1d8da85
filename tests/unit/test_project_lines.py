"""`wheelwright project build` in a CI log (no terminal): one line per change of a package's
state or stage, then a summary whose names are never cut, line by line."""

from __future__ import annotations

import io

from service.cli.project_lines import ProgressLines
from service.project.run import NodeProgress, ProjectProgress

LONG = "a-package-name-far-longer-than-any-table-column-would-ever-show-whole-in-80-columns"


def test_each_state_change_is_one_line_and_the_summary_names_every_package_whole() -> None:
    now = [100.0]
    out = io.StringIO()
    lines = ProgressLines(out, clock=lambda: now[0])
    scatter = NodeProgress("torch-scatter", "2.1.2", 1)
    other = NodeProgress(LONG, "1.0", 1)
    progress = ProjectProgress({scatter.name: scatter, other.name: other})
    lines.update(progress)
    scatter.state, scatter.build_id, scatter.started = "queued", "b1", 100.0
    other.state, other.started = "queued", 100.0
    lines.update(progress)
    lines.update(progress)  # nothing changed: nothing written
    now[0] = 112.0
    scatter.state, scatter.stage = "running", "fetch"
    lines.update(progress)
    now[0] = 412.0
    scatter.stage = "build"
    other.state, other.error, other.finished = "failed", "failed in stage build: \x1b[31mboom", 412
    lines.update(progress)
    now[0] = 500.0
    scatter.state, scatter.stage, scatter.finished = "built", "publish", 500.0
    scatter.wheel = "torch_scatter-2.1.2-cp311-cp311-linux_x86_64.whl"
    lines.update(progress)
    lines.summary(progress)
    assert out.getvalue().splitlines() == [
        "torch-scatter 2.1.2  waiting",
        f"{LONG} 1.0  waiting",
        "torch-scatter 2.1.2  queued",
        f"{LONG} 1.0  queued",
        "torch-scatter 2.1.2  running  fetch  12 s",
        "torch-scatter 2.1.2  running  build  312 s",
        f"{LONG} 1.0  failed  312 s  failed in stage build: ^[[31mboom",
        "torch-scatter 2.1.2  built  400 s",
        "summary:",
        "  torch-scatter 2.1.2  built  400 s  torch_scatter-2.1.2-cp311-cp311-linux_x86_64.whl",
        f"  {LONG} 1.0  failed  312 s  failed in stage build: ^[[31mboom",
    ]


def test_an_empty_build_writes_no_summary() -> None:
    out = io.StringIO()
    ProgressLines(out).summary(ProjectProgress())
    assert out.getvalue() == ""
