"""testbed: real integration-test infrastructure."""

__version__ = "0.1.0"
