"""`python -m shopstream_describer`: run the service until SIGTERM, then drain and exit."""

from __future__ import annotations

from shopstream.services import serve


def main() -> None:
    serve("describer")


if __name__ == "__main__":
    main()
