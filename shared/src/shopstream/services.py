"""Every service declares itself once, in a `ServiceSpec` found through a package entry point.

A service package names its spec under the `shopstream.services` entry-point group:

    [project.entry-points."shopstream.services"]
    describer = "shopstream_describer.spec:SPEC"

The topic registry, the ACLs, the CLI (`run`, `demo`, the service commands), the Grafana
dashboard and the deploy checks all read the specs, so adding a service is its package, its entry
point and its deploy overlay; nothing in the core lists services by hand.

Specs are cheap to import: they name the service's factory, demo and commands by import path
("module:attribute"), which is resolved only when that part is used, so `shopstream --help` never
loads a service's runtime.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, TypedDict

from shopstream.logs import configure_logging
from shopstream.settings import ServiceSettings
from shopstream.topics import TopicSettings

if TYPE_CHECKING:
    from rich.console import Console

    from shopstream.runtime.service import BatchService
    from shopstream.settings import KafkaSettings

ENTRY_POINT_GROUP = "shopstream.services"


@dataclass(frozen=True)
class TopicUse:
    """What one service reads and writes; the ACLs and the topic registry derive from it."""

    consumes: tuple[str, ...]
    """Read in the consumer group; each also gets a dead-letter topic to write."""
    produces: tuple[str, ...]
    loads: tuple[str, ...] = ()
    """Read in full outside the group (compacted reference data, the service's own state)."""
    compacted: frozenset[str] = frozenset()
    """Of the topics above, those with `cleanup.policy=compact` (keyed tables)."""


@dataclass(frozen=True)
class DemoOptions:
    """What `shopstream demo` hands every service's demo step."""

    console: Console
    kafka: KafkaSettings
    rate: float = 50.0
    """Events per second a step's sample publisher sends, where it paces itself."""
    metrics_port: int = 0
    keep_running: bool = False
    """Leave the service running after the step (only the first step honours it)."""


DemoStep = Callable[[DemoOptions], Coroutine[Any, Any, bool]]
"""A service's demo step: True when it showed what it promised (every input answered)."""


@dataclass(frozen=True)
class CommandSpec:
    """A CLI command a service adds: `shopstream GROUP NAME`, e.g. `eval sentiment`."""

    group: str
    name: str
    target: str
    """`module:function`, a typer command function."""


class ServiceIdentity(TypedDict):
    """The keyword arguments of `BatchService` that its spec decides:
    `BatchService(**SPEC.identity(settings, __version__), accepts=..., ...)`."""

    name: str
    version: str
    settings: ServiceSettings
    input_topics: tuple[str, ...]
    output_topics: tuple[str, ...]


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    settings: type[ServiceSettings]
    topics: Callable[[Any], TopicUse]
    """The service's `TopicUse` from its own settings (an instance of `settings`)."""
    factory: str
    """`module:function` building the service from optional settings (`build_service`)."""
    demo: str | None = None
    """`module:function`, a `DemoStep`."""
    commands: tuple[CommandSpec, ...] = ()
    shares_registry: bool = True
    """False for a service whose topics are its own settings (echo), not the shared registry:
    they are not created for every other service."""
    image: bool = True
    """Ships a container image and a deploy overlay (the deploy checks look for them)."""

    @classmethod
    def of_package(
        cls,
        name: str,
        settings: type[ServiceSettings],
        topics: Callable[[Any], TopicUse],
        commands: dict[str, str] | None = None,
    ) -> ServiceSpec:
        """The spec of a service laid out as every shopstream service is: the package
        `shopstream_NAME` with `app:build_service`, `demo:demo_step` and a `cli` module whose
        functions `commands` names by command (`{"eval NAME": "evaluate"}`)."""
        package = f"shopstream_{name}"
        return cls(
            name=name,
            settings=settings,
            topics=topics,
            factory=f"{package}.app:build_service",
            demo=f"{package}.demo:demo_step",
            commands=tuple(
                CommandSpec(*_group_and_name(command), target=f"{package}.cli:{function}")
                for command, function in (commands or {}).items()
            ),
        )

    def load_settings(self) -> ServiceSettings:
        """The settings from the service's environment (`DESCRIBER_...`), as it reads them."""
        return self.settings()

    def topic_use(self, settings: ServiceSettings | None = None) -> TopicUse:
        return self.topics(settings if settings is not None else self.load_settings())

    def identity(self, settings: ServiceSettings, version: str) -> ServiceIdentity:
        """The name and the topics the service runs with: those its spec declares, so the ACLs
        and the topic registry read the same."""
        topics = self.topic_use(settings)
        return ServiceIdentity(
            name=self.name,
            version=version,
            settings=settings,
            input_topics=topics.consumes,
            output_topics=topics.produces,
        )

    def registry_use(self, topics: TopicSettings) -> TopicUse:
        """What the service uses of the shared registry named by `topics`, with its other
        settings at their defaults: the environment is not read, so the registry a CLI or a
        service computes does not depend on another service's env vars."""
        return self.topics(self.settings.model_construct(topics=topics))

    def build(self, settings: ServiceSettings | None = None) -> BatchService[Any]:
        factory = resolve(self.factory)
        service: BatchService[Any] = factory(settings) if settings is not None else factory()
        return service

    def demo_step(self) -> DemoStep | None:
        if self.demo is None:
            return None
        step: DemoStep = resolve(self.demo)
        return step


def _group_and_name(command: str) -> tuple[str, str]:
    group, _, name = command.partition(" ")
    return group, name


def resolve(target: str) -> Any:  # noqa: ANN401 - the attribute's type is the caller's to know
    """Import `module:attribute`."""
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


@functools.cache
def discover() -> dict[str, ServiceSpec]:
    """Every installed service's spec, by name, in name order."""
    specs: dict[str, ServiceSpec] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        spec = entry.load()
        if not isinstance(spec, ServiceSpec):
            raise TypeError(f"entry point {entry.name!r} ({entry.value}) is not a ServiceSpec")
        if spec.name != entry.name:
            raise ValueError(f"entry point {entry.name!r} names a spec called {spec.name!r}")
        specs[spec.name] = spec
    return dict(sorted(specs.items()))


def service_spec(name: str) -> ServiceSpec:
    """The spec of one installed service; `LookupError` names the installed ones."""
    specs = discover()
    if name not in specs:
        raise LookupError(f"unknown service {name!r}; installed: {', '.join(specs)}")
    return specs[name]


def serve(name: str) -> None:
    """Run one installed service until SIGTERM or SIGINT, then drain: what `python -m
    shopstream_<name>` (the containers' entry point) and `shopstream run NAME` do."""
    spec = service_spec(name)
    settings = spec.load_settings()
    configure_logging(settings.log_level, settings.log_json)
    asyncio.run(spec.build(settings).run())
