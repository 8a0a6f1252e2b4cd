"""What gunicorn.conf.py computes: how many workers the container's CPU quota allows."""

from __future__ import annotations

import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def container_cpus(cgroup: Path = CGROUP) -> float:
    """CPUs this process may use: the cgroup quota (a container's --cpus), else the affinity.

    os.cpu_count() is the host's count: a container limited to 2 CPUs on a 64-core host would
    start 129 workers from it.
    """
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]  # cgroup v2
        if quota != "max":
            return max(int(quota) / int(period), 1.0)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())  # cgroup v1
        period_us = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
        if quota_us > 0:
            return max(quota_us / period_us, 1.0)
    except (OSError, ValueError):
        pass
    return float(len(os.sched_getaffinity(0)))


def workers_for(cpus: float) -> int:
    """gunicorn's rule of thumb, 2 per CPU plus one, on the CPUs the quota gives."""
    return int(cpus * 2) + 1
