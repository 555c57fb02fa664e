"""Offline checks of the deployment files: Dockerfiles, settings env vars, kustomize rendering.

The env-var check walks a pydantic-settings class the way pydantic-settings reads the
environment: `<PREFIX><FIELD>`, nested models joined by `__`, case-insensitive.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
import yaml
from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings

from shopstream.services import discover
from shopstream.settings import ShopstreamSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("cpu", "gpu")


def service_settings() -> dict[str, type[BaseSettings]]:
    """Program a container runs -> the settings class that reads its environment, for every
    installed service (its spec names both)."""
    return {name: spec.settings for name, spec in discover().items()}


def images() -> dict[str, str]:
    """Image name -> the service it runs (the Dockerfile's SERVICE build argument), for every
    installed service whose spec says it ships one."""
    return {f"shopstream/{name}": name for name, spec in discover().items() if spec.image}


def image_models(service: str) -> list[str]:
    """The models the image of `service` converts at build time, from its pyproject.toml."""
    with (ROOT / "services" / service / "pyproject.toml").open("rb") as file:
        table = tomllib.load(file)
    return list(table["tool"]["shopstream"]["image"]["bake-models"])


def deploy_gaps() -> list[str]:
    """What an installed service that ships an image still lacks: its directory under services/
    (the Dockerfile builds from it) and its Kubernetes base (the overlays and compose then name
    it; their checks test the rest)."""
    gaps = [
        f"{ROOT / 'services' / name / 'pyproject.toml'} is missing"
        for name in images().values()
        if not (ROOT / "services" / name / "pyproject.toml").is_file()
    ]
    gaps += [
        f"{K8S / 'base' / name} is missing"
        for name, spec in discover().items()
        if spec.image and not (K8S / "base" / name / "kustomization.yaml").is_file()
    ]
    return gaps


SERVICE_SETTINGS: dict[str, type[BaseSettings]] = service_settings()
CLI_SETTINGS: type[BaseSettings] = ShopstreamSettings
DOCKERFILE = ROOT / "Dockerfile"
IMAGES = images()
# The image's entry point (shopstream.container), which serves the service named by SERVICE_ENV.
CONTAINER_ENTRYPOINT = ["python", "-m", "shopstream.container"]
SERVICE_ENV = "SHOPSTREAM_SERVICE"
# As in shopstream.models.cache, which is not imported here because that package imports torch.
CACHE_ENV = "SHOPSTREAM_CACHE"

# Read by something other than a settings class; anything else must be a known settings name.
NON_SETTINGS_ENV = frozenset(
    {
        "PATH",
        "HOME",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        CACHE_ENV,
        SERVICE_ENV,
        "HF_HOME",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "OMP_NUM_THREADS",
        "TOKENIZERS_PARALLELISM",
    }
)
# Defaults that are right on a laptop and wrong in a container (loopback only).
CONTAINER_REQUIRED = ("KAFKA__BOOTSTRAP_SERVERS",)
SERVICE_CONTAINER_REQUIRED = ("KAFKA__BOOTSTRAP_SERVERS", "HTTP_HOST")


# --- Dockerfiles -------------------------------------------------------------------------------


@dataclass
class Dockerfile:
    path: Path
    stages: list[list[tuple[str, str]]] = field(default_factory=list)
    """Instructions per stage, (INSTRUCTION, arguments), continuations joined."""

    @property
    def final(self) -> list[tuple[str, str]]:
        return self.stages[-1]

    def final_args(self, instruction: str) -> list[str]:
        return [args for name, args in self.final if name == instruction]

    @property
    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for args in self.final_args("ENV"):
            words = shlex.split(args)
            if "=" not in words[0]:
                values[words[0]] = " ".join(words[1:])
                continue
            for word in words:
                name, _, value = word.partition("=")
                values[name] = value
        return values

    @property
    def entrypoint(self) -> list[str]:
        return list(json.loads(self.final_args("ENTRYPOINT")[-1]))


def image_dockerfile(image: str) -> Dockerfile:
    """The Dockerfile as built for `image` (its SERVICE build argument filled in)."""
    return parse_dockerfile(DOCKERFILE, {"SERVICE": IMAGES[image]})


def parse_dockerfile(path: Path, build_args: Mapping[str, str] | None = None) -> Dockerfile:
    """The instructions of `path`, with `${NAME}` replaced for every build argument given."""
    dockerfile = Dockerfile(path)
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined = pending + line
        for name, value in (build_args or {}).items():
            joined = joined.replace("${" + name + "}", value)
        instruction, _, args = joined.partition(" ")
        pending = ""
        instruction = instruction.upper()
        if instruction == "FROM":
            dockerfile.stages.append([])
        if dockerfile.stages:
            dockerfile.stages[-1].append((instruction, args.strip()))
    return dockerfile


# --- settings env vars ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvNames:
    known: frozenset[str]
    required: frozenset[str]
    map_prefixes: frozenset[str]
    """Dict-valued fields also take `<NAME>__<key>` variables."""

    def is_known(self, name: str) -> bool:
        upper = name.upper()
        return upper in self.known or any(upper.startswith(p) for p in self.map_prefixes)


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for argument in typing.get_args(annotation):
            model = _nested_model(argument)
            if model is not None:
                return model
    return None


def _is_mapping(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_mapping(argument) for argument in typing.get_args(annotation))
    return origin in (dict, Mapping) or annotation is dict


def env_names(model: type[BaseModel], prefix: str, delimiter: str = "__") -> EnvNames:
    known: set[str] = set()
    required: set[str] = set()
    map_prefixes: set[str] = set()

    def walk(current: type[BaseModel], stem: str, parent_required: bool) -> None:
        for name, info in current.model_fields.items():
            variable = (stem + name).upper()
            known.add(variable)  # a nested model can also be given whole, as JSON
            is_required = parent_required and info.is_required()
            nested = _nested_model(info.annotation)
            if nested is not None:
                walk(nested, variable + delimiter, is_required)
            elif is_required:
                required.add(variable)
            if _is_mapping(info.annotation):
                map_prefixes.add(variable + delimiter)

    walk(model, prefix, parent_required=True)
    return EnvNames(frozenset(known), frozenset(required), frozenset(map_prefixes))


def settings_prefix(settings: type[BaseSettings]) -> str:
    return str(settings.model_config.get("env_prefix", "")).upper()


def settings_for_command(
    argv: list[str], env: Mapping[str, str | None]
) -> tuple[type[BaseSettings], tuple[str, ...]]:
    """The settings class a container's command reads, and the names it must set itself."""
    if argv == CONTAINER_ENTRYPOINT:
        service = env.get(SERVICE_ENV)
        if service not in SERVICE_SETTINGS:
            raise ValueError(f"{SERVICE_ENV}={service!r} names no installed service")
        # The entry point itself listens on all interfaces unless HTTP_HOST is set.
        return SERVICE_SETTINGS[service], CONTAINER_REQUIRED
    if argv[:2] == ["python", "-m"] and argv[2].startswith("shopstream_"):
        service = argv[2].removeprefix("shopstream_")
        return SERVICE_SETTINGS[service], SERVICE_CONTAINER_REQUIRED
    if argv[:2] == ["shopstream", "run"]:
        return SERVICE_SETTINGS[argv[2]], SERVICE_CONTAINER_REQUIRED
    if argv[:1] == ["shopstream"]:
        return CLI_SETTINGS, CONTAINER_REQUIRED
    raise ValueError(f"no settings class known for the command {argv}")


def effective_settings(env: Mapping[str, str | None], argv: list[str]) -> BaseSettings:
    """The settings the program would read from this environment (Secret values left out)."""
    settings, _ = settings_for_command(argv, env)
    prefix = settings_prefix(settings)
    values = {
        name: value
        for name, value in env.items()
        if value is not None and name.upper().startswith(prefix)
    }
    with _environment(prefix, values):
        return settings()


@contextmanager
def _environment(prefix: str, values: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    try:
        for name in [name for name in os.environ if name.upper().startswith(prefix)]:
            del os.environ[name]
        os.environ.update(values)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def env_problems(
    env: Mapping[str, str | None], argv: list[str], *, required: bool = True
) -> list[str]:
    """What is wrong with a container's environment for the program it runs.

    `env` maps names to values, or to None when the value comes from elsewhere (a Secret).
    With `required`, the settings' required fields and the container-required names must be set.
    """
    settings, container_required = settings_for_command(argv, env)
    prefix = settings_prefix(settings)
    names = env_names(settings, prefix)
    problems = [
        f"{name}: not a setting of {settings.__name__} (prefix {prefix})"
        for name in sorted(env)
        if name.upper() not in NON_SETTINGS_ENV and not names.is_known(name)
    ]
    if required:
        present = {name.upper() for name in env}
        wanted = set(names.required) | {prefix + name for name in container_required}
        problems += [
            f"{name}: required by {settings.__name__} but not set"
            for name in sorted(wanted - present)
        ]
    values = {
        name: value
        for name, value in env.items()
        if value is not None and name.upper().startswith(prefix) and names.is_known(name)
    }
    with _environment(prefix, values):
        try:
            settings()
        except ValidationError as error:
            problems.append(f"{settings.__name__} rejects the values: {error}")
    return problems


# --- kustomize ---------------------------------------------------------------------------------


def _tools_bin() -> Path:
    cache_root = os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("shopstream")
    return Path(cache_root).expanduser() / "tools" / "bin"


def compose_project(*files: str) -> dict[str, Any]:
    """The project Docker Compose would run from these files (validated against the compose
    spec, interpolated, overrides merged), from tools/composecheck built by bootstrap."""
    binary = _tools_bin() / "composecheck"
    if not binary.is_file():
        raise RuntimeError(f"{binary} missing: run scripts/bootstrap.sh (needs Go)")
    arguments = [argument for name in files for argument in ("-f", name)]
    completed = subprocess.run(
        [str(binary), *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"compose files {files} are invalid: {completed.stderr}")
    project: dict[str, Any] = json.loads(completed.stdout)
    return project


def kustomize_command() -> list[str] | None:
    """`kustomize build` from the pinned binary that scripts/bootstrap.sh installs, else from
    PATH, else kubectl's embedded `kubectl kustomize`."""
    installed = _tools_bin() / "kustomize"
    binary = os.environ.get("KUSTOMIZE") or (
        str(installed) if installed.is_file() else shutil.which("kustomize")
    )
    if binary:
        return [binary, "build"]
    kubectl = shutil.which("kubectl")
    return [kubectl, "kustomize"] if kubectl else None


def kustomize_build(directory: Path, *options: str) -> list[dict[str, Any]]:
    command = kustomize_command()
    if command is None:
        raise RuntimeError("kustomize not found: run scripts/bootstrap.sh")
    completed = subprocess.run(
        [*command, *options, str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"kustomize build {directory} failed:\n{completed.stderr}")
    return [doc for doc in yaml.safe_load_all(completed.stdout) if doc]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())
