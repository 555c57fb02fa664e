"""`python -m shopstream_recommender`: run the service until SIGTERM, then drain and exit."""

from __future__ import annotations

import asyncio

from shopstream.logs import configure_logging
from shopstream_recommender.app import build_service
from shopstream_recommender.config import RecommenderSettings


def main() -> None:
    settings = RecommenderSettings()
    configure_logging(settings.log_level, settings.log_json)
    asyncio.run(build_service(settings).run())


if __name__ == "__main__":
    main()
