"""Project builds: from a project's lock to the graph of wheels it is missing for one target.

`lock` reads what uv decided (uv.lock), `compat` says which wheels a target can install,
`settings` reads what the project says of its own builds, and `plan` turns them into the
ordered graph of packages to build. Planning is pure: nothing is fetched or built here.
"""

from service.project.lock import Lock, LockedPackage, parse_lock
from service.project.plan import BuildNode, ProjectPlan, plan_project
from service.project.settings import (
    ProjectBuildSettings,
    project_build_settings,
    read_project_settings,
)

__all__ = [
    "BuildNode",
    "Lock",
    "LockedPackage",
    "ProjectBuildSettings",
    "ProjectPlan",
    "parse_lock",
    "plan_project",
    "project_build_settings",
    "read_project_settings",
]
