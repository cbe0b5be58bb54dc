"""`python -m gradsafe` runs the CLI."""

from gradsafe.cli import run

run()
