"""runner: make for spec-driven AI development."""

__version__ = "0.1.0"
