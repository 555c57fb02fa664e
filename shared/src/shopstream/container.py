"""Entry point of the service images: `python -m shopstream.container [health]`.

One Dockerfile builds every service's image (`--build-arg SERVICE=...`), which the image keeps
as `SHOPSTREAM_SERVICE`. A Dockerfile cannot derive the service's env prefix from a build
argument, so this module does what the image would otherwise spell out per service:

- `python -m shopstream.container` serves the service, with its metrics and health server on
  all interfaces unless `<SERVICE>_HTTP_HOST` says otherwise (the service's default, loopback,
  would hide the endpoints from Prometheus and the probes);
- `python -m shopstream.container health` is the image's health check: it asks the service's
  liveness endpoint on the port of `<SERVICE>_HTTP_PORT`, using the standard library only, so a
  probe every few seconds does not import the service and its model libraries.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Mapping, MutableMapping, Sequence

SERVICE_ENV = "SHOPSTREAM_SERVICE"
CONTAINER_HTTP_HOST = "0.0.0.0"  # noqa: S104 - a container's port is what its runtime publishes
DEFAULT_HTTP_PORT = "8000"  # ServiceSettings.http_port's default


def env_prefix(service: str) -> str:
    """`sentiment` -> `SENTIMENT_`: every service's settings read this prefix (a unit test holds
    each installed spec to it, because the health check cannot import the spec to ask)."""
    return service.upper() + "_"


def service_name(environ: Mapping[str, str]) -> str:
    name = environ.get(SERVICE_ENV, "").strip()
    if not name:
        raise SystemExit(f"{SERVICE_ENV} is not set: build the image with --build-arg SERVICE=...")
    return name


def liveness_url(environ: Mapping[str, str]) -> str:
    port = environ.get(env_prefix(service_name(environ)) + "HTTP_PORT", DEFAULT_HTTP_PORT)
    return f"http://127.0.0.1:{port}/health/live"


def probe(environ: Mapping[str, str], timeout: float = 4.0) -> int:
    """0 when the service answers its liveness endpoint, 1 otherwise (the health check's code)."""
    try:
        with urllib.request.urlopen(liveness_url(environ), timeout=timeout) as answer:  # noqa: S310 - loopback
            return 0 if answer.status == 200 else 1
    except OSError as error:
        sys.stderr.write(f"unhealthy: {error}\n")
        return 1


def run(environ: MutableMapping[str, str]) -> None:
    # Imported here: the health check must stay free of the service and its model libraries.
    from shopstream.services import serve, service_spec  # noqa: PLC0415

    name = service_name(environ)
    prefix = str(service_spec(name).settings.model_config.get("env_prefix", "")).upper()
    if prefix != env_prefix(name):
        raise SystemExit(f"{name}'s settings read {prefix}*, the image expects {env_prefix(name)}*")
    environ.setdefault(prefix + "HTTP_HOST", CONTAINER_HTTP_HOST)
    serve(name)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["health"]:
        return probe(os.environ)
    if args:
        sys.stderr.write("usage: python -m shopstream.container [health]\n")
        return 2
    run(os.environ)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
