"""A container engine for the image tests: podman (this project's CI) or a Docker engine.

`KAFKA_REQUIRED=1` (CI) or `SHOPSTREAM_CONTAINERS_REQUIRED=1` turn "no engine" into a failure,
so a CI machine without podman cannot pass by skipping the image tests.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MIN_FREE_BYTES = 20 * 2**30
"""Free disk below which a build first prunes dangling images (a cold sentiment build needs
about 15 GB; the cache those images hold is worth less than a build that fails)."""


@dataclass(frozen=True)
class Engine:
    cli: str

    @property
    def is_podman(self) -> bool:
        return Path(self.cli).name == "podman"

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        done = subprocess.run(
            [self.cli, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{self.cli} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout.strip()

    def build(self, dockerfile: str, tag: str, build_args: dict[str, str], log: Path) -> float:
        """Build from the repository root; returns the seconds it took.

        Disk is the scarce resource: the image's Python environment is about 7 GB and is written
        twice while its layer is committed. So the build first prunes dangling images (stage
        images of earlier sources, the build cache) when less than `MIN_FREE_BYTES` is free, and
        afterwards removes the image the tag pointed at before, which would otherwise be left
        behind, whole, by every build of changed sources.
        """
        previous = self.run("image", "inspect", "--format", "{{.Id}}", tag, check=False)
        if shutil.disk_usage(ROOT).free < MIN_FREE_BYTES:
            self.run("image", "prune", "--force", timeout=600, check=False)
        command = [self.cli, "build", "-f", dockerfile, "-t", tag]
        for name, value in build_args.items():
            command += ["--build-arg", f"{name}={value}"]
        if self.is_podman:
            # The base images are local stand-ins (scripts/containers.sh): never pull. The host's
            # uv cache is lent to the build so torch and the CUDA wheels are not fetched again.
            command.append("--pull=never")
            cache = uv_cache_dir()
            if cache is not None:
                command += ["--volume", f"{cache}:/root/.cache/uv"]
        started = time.monotonic()
        with log.open("w") as output:
            done = subprocess.run(
                [*command, "."], cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, check=False
            )
        if done.returncode != 0:
            tail = "\n".join(log.read_text().splitlines()[-40:])
            raise AssertionError(f"building {tag} failed (exit {done.returncode}):\n{tail}")
        seconds = time.monotonic() - started
        built = self.run("image", "inspect", "--format", "{{.Id}}", tag)
        if previous and previous != built:
            self.run("rmi", previous, timeout=300, check=False)
        return seconds


def uv_cache_dir() -> str | None:
    uv = shutil.which("uv")
    if uv is None:
        return None
    done = subprocess.run([uv, "cache", "dir"], capture_output=True, text=True, check=False)
    path = done.stdout.strip()
    return path if done.returncode == 0 and Path(path).is_dir() else None


def _answers(cli: str) -> bool:
    try:
        done = subprocess.run([cli, "info"], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def find_engine() -> Engine:
    """podman first (no daemon needed), else a Docker engine that answers; else fail or skip."""
    for name in ("podman", "docker"):
        cli = shutil.which(name)
        if cli is not None and _answers(cli):
            return Engine(cli)
    reason = "no container engine: run scripts/containers.sh (installs podman)"
    if "1" in (os.environ.get("KAFKA_REQUIRED"), os.environ.get("SHOPSTREAM_CONTAINERS_REQUIRED")):
        pytest.fail(f"container tests are required here but {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
