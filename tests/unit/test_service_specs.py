"""A service declares itself once, in a spec behind an entry point.

A throwaway fifth service, installed through an entry point alone (a module and its dist-info on
`sys.path`, nothing edited in the core), must reach the topic registry, the ACLs, the CLI and the
deploy checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from shopstream.acls import acl_bindings, load_settings, service_access
from shopstream.cli.main import build_app
from shopstream.services import ENTRY_POINT_GROUP, discover, service_spec
from shopstream.topics import TopicSettings
from support.deploy import deploy_gaps, images, service_settings

pytestmark = pytest.mark.unit

FIFTH_SERVICE = '''
"""A throwaway fifth service, for the spec test."""

import typer
from pydantic_settings import SettingsConfigDict

from shopstream.services import CommandSpec, ServiceSpec, TopicUse
from shopstream.settings import ServiceSettings


class FifthSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FIFTH_")

    input_topic: str = "shop.fifth.requests"
    output_topic: str = "shop.fifth.results"


def topic_use(settings: FifthSettings) -> TopicUse:
    return TopicUse(consumes=(settings.input_topic,), produces=(settings.output_topic,))


def hello(name: str = "shop") -> None:
    """Say hello."""
    typer.echo(f"fifth says hello to {name}")


SPEC = ServiceSpec(
    name="fifth",
    settings=FifthSettings,
    topics=topic_use,
    factory="fifth_service:build_service",
    commands=(CommandSpec("fifth", "hello", "fifth_service:hello"),),
)
'''


def install(site: Path, module: str, entry_point: str) -> None:
    """What installing a package leaves behind: its module and its dist-info."""
    (site / "fifth_service.py").write_text(module)
    info = site / "fifth_service-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fifth-service\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entry_point}\n")


@pytest.fixture
def fifth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    install(tmp_path, FIFTH_SERVICE, "fifth = fifth_service:SPEC")
    monkeypatch.syspath_prepend(str(tmp_path))
    discover.cache_clear()
    yield
    discover.cache_clear()


def test_the_installed_services_declare_themselves() -> None:
    assert set(discover()) == {"describer", "echo", "recommender", "responder", "sentiment"}
    with pytest.raises(LookupError, match="installed: describer, echo"):
        service_spec("nope")


@pytest.mark.usefixtures("fifth")
def test_a_fifth_service_joins_the_topic_registry() -> None:
    names = {spec.name for spec in TopicSettings().specs()}
    assert {"shop.fifth.requests", "shop.fifth.results", "shop.fifth.requests.dlq"} <= names
    assert "shop.fifth.results.dlq" not in names, "only consumed topics get a dead-letter topic"


@pytest.mark.usefixtures("fifth")
def test_a_fifth_service_gets_its_least_privilege_acls() -> None:
    grants = {str(b) for b in acl_bindings(service_access("fifth", load_settings("fifth")))}
    assert grants == {
        "ALLOW User:fifth READ GROUP shopstream-fifth",
        "ALLOW User:fifth READ TOPIC shop.fifth.requests",
        "ALLOW User:fifth WRITE TOPIC shop.fifth.results",
        "ALLOW User:fifth WRITE TOPIC shop.fifth.requests.dlq",
    }


@pytest.mark.usefixtures("fifth")
def test_a_fifth_service_adds_its_commands_and_is_known_to_the_cli() -> None:
    runner = CliRunner()
    app = build_app()
    said = runner.invoke(app, ["fifth", "hello", "--name", "acme"])
    assert said.exit_code == 0, said.output
    assert "fifth says hello to acme" in said.output
    shown = runner.invoke(app, ["acls", "show", "fifth"])
    assert shown.exit_code == 0, shown.output
    assert "WRITE TOPIC shop.fifth.requests.dlq" in shown.output


@pytest.mark.usefixtures("fifth")
def test_the_deploy_checks_ask_a_fifth_service_for_its_image_and_manifests() -> None:
    assert service_settings()["fifth"].__name__ == "FifthSettings"
    assert images()["shopstream/fifth"] == "fifth"
    gaps = deploy_gaps()
    assert any("services/fifth/pyproject.toml" in gap for gap in gaps)
    assert any("deploy/k8s/base/fifth" in gap for gap in gaps)
    assert all("fifth" in gap for gap in gaps), "the four real services lack nothing"


def test_an_entry_point_must_name_its_own_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(tmp_path, FIFTH_SERVICE, "sixth = fifth_service:SPEC")
    monkeypatch.syspath_prepend(str(tmp_path))
    discover.cache_clear()
    try:
        with pytest.raises(ValueError, match="'sixth' names a spec called 'fifth'"):
            discover()
    finally:
        discover.cache_clear()


def test_every_command_answers_help() -> None:
    """Every command of the real CLI, core and services, loads and documents itself."""
    app = build_app()
    runner = CliRunner()
    paths = list(command_paths(typer.main.get_command(app), ()))
    assert ("eval", "sentiment") in paths
    assert ("describer", "tune") in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output


def test_data_files_are_passed_with_data_everywhere() -> None:
    """One convention: `--data FILE` for every eval and train command."""
    app = build_app()
    runner = CliRunner()
    for path in [("eval", name) for name in ("sentiment", "recommender", "responder", "describer")]:
        result = runner.invoke(app, [*path, "--help"])
        assert "--data" in result.output, path
    missing = runner.invoke(app, ["eval", "sentiment"])
    assert missing.exit_code == 2
    assert "--data" in missing.output


def command_paths(command: object, prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    # Typer ships its own click; a group is whatever has sub-commands.
    subcommands = getattr(command, "commands", None)
    if subcommands:
        for name, sub in subcommands.items():
            yield from command_paths(sub, (*prefix, name))
    else:
        yield prefix
