"""shopstream sentiment service: review polarity, aspects and per-product insights."""

__version__ = "0.1.0"
