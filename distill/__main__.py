"""`python -m distill ...` runs the CLI (used by tests and job scripts)."""

from distill.cli import app

app(prog_name="distill")
