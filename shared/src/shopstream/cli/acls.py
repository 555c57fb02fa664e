"""`shopstream acls show|apply SERVICE...`: least-privilege ACLs for service principals.

Each service's topics, group and delivery mode come from its own environment (`SENTIMENT_...`),
exactly as the service reads them, so run this with the service's configuration in the
environment. `apply` connects with the `SHOPSTREAM_KAFKA__*` settings: an admin principal.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

from shopstream.acls import AclBinding, acl_bindings, load_settings, service_access
from shopstream.runtime.acl_admin import create_acls
from shopstream.services import discover
from shopstream.settings import ShopstreamSettings

app = typer.Typer(help="Least-privilege ACLs for each service's principal.", no_args_is_help=True)
console = Console()

Services = Annotated[list[str], typer.Argument(help=f"Any of: {', '.join(discover())}.")]
Principal = Annotated[
    str | None,
    typer.Option(help="Principal to grant (one service only); default: User:<SASL username>."),
]


def _bindings(services: list[str], principal: str | None) -> list[AclBinding]:
    known = list(discover())
    unknown = sorted(set(services) - set(known))
    if unknown:
        raise typer.BadParameter(f"unknown service(s) {unknown}; choose from {known}")
    if principal is not None and len(services) != 1:
        raise typer.BadParameter("--principal applies to one service at a time")
    bindings: list[AclBinding] = []
    for service in services:
        bindings += acl_bindings(service_access(service, load_settings(service), principal))
    return bindings


@app.command()
def show(services: Services, principal: Principal = None) -> None:
    """Print the ACLs each service needs, without touching the cluster."""
    for binding in _bindings(services, principal):
        console.print(str(binding), highlight=False)


@app.command()
def apply(services: Services, principal: Principal = None) -> None:
    """Create the ACLs on the cluster (idempotent)."""
    bindings = _bindings(services, principal)
    asyncio.run(create_acls(ShopstreamSettings().kafka, bindings))
    for binding in bindings:
        console.print(f"[green]granted[/green] {binding}", highlight=False)
