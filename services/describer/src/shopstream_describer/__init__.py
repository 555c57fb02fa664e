"""The describer service: grounded, compliant product descriptions and marketing copy."""

__version__ = "0.1.0"
