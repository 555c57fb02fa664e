"""The `shopstream` command line."""

from shopstream.cli.main import app

__all__ = ["app"]
