"""The deployment files say what docs/deployment.md says: locked, non-root, sized, one-off
migration, and compose with every part. (deploy/topology-smoke.sh runs the topology itself.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from app.server import container_cpus, workers_for

ROOT = Path(__file__).parent.parent


def test_the_dockerfile_installs_the_lock_before_the_code_and_runs_as_non_root() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    order = [n for n, line in enumerate(lines) if line.startswith(("COPY", "RUN pip", "USER"))]
    steps = [lines[n] for n in order]
    assert steps[0] == "COPY requirements.lock ./"
    assert steps[1].startswith("RUN pip install --require-hashes")
    assert steps.index("COPY app ./app") > 1
    assert lines[order[-1]].startswith("USER")
    assert "root" not in lines[order[-1]]
    assert any(line.startswith("VOLUME") for line in lines)
    command = next(line for line in lines if line.startswith("CMD"))
    assert "upgrade" not in command  # migrating is a one-off step


def test_every_direct_dependency_is_pinned_with_hashes_in_the_lock() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = (ROOT / "requirements.lock").read_text().lower()
    for requirement in project["dependencies"]:
        name = re.split(r"[\[<>=~! ]", requirement, maxsplit=1)[0].lower()
        assert re.search(rf"^{re.escape(name)}==\S+ \\$", lock, re.MULTILINE), f"{name}: make lock"
    assert "--hash=sha256:" in lock


def test_compose_has_web_worker_database_redis_mail_and_a_one_off_migration() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    assert {"web", "worker", "migrate", "postgres", "redis", "mail"} <= set(services)
    assert services["web"]["depends_on"]["migrate"] == {
        "condition": "service_completed_successfully"
    }
    assert "db upgrade" in services["migrate"]["command"]
    assert services["worker"]["command"] == ["consent-center", "worker"]


def test_workers_are_sized_from_the_cgroup_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert container_cpus(tmp_path) == 1.5
    assert workers_for(container_cpus(tmp_path)) == 4
    (tmp_path / "cpu.max").write_text("max 100000\n")
    v1 = tmp_path / "cpu"
    v1.mkdir()
    (v1 / "cpu.cfs_quota_us").write_text("200000")
    (v1 / "cpu.cfs_period_us").write_text("100000")
    assert container_cpus(tmp_path) == 2.0
    (v1 / "cpu.cfs_quota_us").write_text("-1")
    assert container_cpus(tmp_path) >= 1.0  # no quota: the CPUs this process may run on
