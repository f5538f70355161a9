"""Run distill from a checkout without installing: `python cli.py --help`."""

from distill.cli import app

app()
