"""shopstream responder service: grounded customer-service answers with citations and hand-off."""

__version__ = "0.1.0"
