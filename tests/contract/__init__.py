"""Contract tests: what every service promises, run by each service with its own fixtures."""
