"""Command line (placeholder until the core lands)."""

import click


@click.group()
def main() -> None:
    """runner: make for spec-driven AI development."""
