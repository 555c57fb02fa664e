"""shopstream: language models on an e-commerce Kafka event stream."""

__version__ = "0.1.0"
