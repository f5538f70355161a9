"""The `distill` command line: one Typer command per pipeline stage.

    distill --help
    distill <stage> --help

Each command parses its options into the stage's config dataclass and calls the stage's entry
function. Heavy libraries (torch, transformers, trl, vllm) are imported inside the stages, so
`distill --help` answers at once. Errors a user can cause print one line and exit with status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from distill import __version__
from distill.errors import UserError

R = TypeVar("R")

app = typer.Typer(
    name="distill",
    help="Distil a reasoning teacher into small students: generate → filter → train → eval → push.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str) -> None:
    """Print one clear error line to stderr and exit with status 2."""
    print(f"distill: error: {message}", file=sys.stderr)
    raise typer.Exit(2)


def run_stage(fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """Call a stage entry function, turning a `UserError` into one line and exit status 2."""
    try:
        return fn(*args, **kwargs)
    except UserError as e:
        fail(str(e))
        raise  # unreachable


def _version(value: bool) -> None:
    if value:
        print(f"distill {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Distil a reasoning teacher into small students: generate → filter → train → eval → push."""


@app.command()
def push(
    model: Annotated[str, typer.Option(help="Trained model folder (`distill train --output`).")],
    repo: Annotated[
        str, typer.Option(help="Hub repo id `user/name` for the model; traces go to `<repo>-traces`.")
    ],
    private: Annotated[bool, typer.Option(help="Create the repos as private.")] = False,
    data: Annotated[
        str | None,
        typer.Option(help="Filter output folder (or its kept/): pushed as Parquet + dataset card."),
    ] = None,
    results: Annotated[
        str | None, typer.Option(help="Eval output folder: metrics go into the model card.")
    ] = None,
    adapter_only: Annotated[bool, typer.Option(help="Push a LoRA adapter as is instead of merged.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Upload nothing; write the folders to --to-dir.")] = False,
    to_dir: Annotated[
        str | None, typer.Option(help="Write exactly the folders that would be uploaded here.")
    ] = None,
    license: Annotated[
        str | None, typer.Option(help="License for the cards (default: the student card's).")
    ] = None,
) -> None:
    """Push a model (+ traces) with model and dataset cards to the Hugging Face Hub."""
    from distill.hub import PushConfig
    from distill.hub import run as run_push

    cfg = PushConfig(
        model=model,
        repo=repo,
        private=private,
        data=data,
        results=results,
        adapter_only=adapter_only,
        dry_run=dry_run,
        to_dir=to_dir,
        license=license,
    )
    summary = run_stage(run_push, cfg)
    where = f"staged in {summary['staged']}" if not summary["uploaded"] else f"uploaded to {summary['repo']}"
    print(
        f"distill push: {summary['kind']} model {where}"
        + (f"; {summary['rows']} traces" if summary["rows"] else "")
    )


@app.command()
def report(
    run_dir: Annotated[
        str, typer.Argument(help="Run folder: every stage output below it is found by its manifest.")
    ],
    output: Annotated[
        str | None, typer.Option(help="Where to write report.md and charts [default: RUN_DIR/report].")
    ] = None,
) -> None:
    """Render a run folder into report.md + PNG charts (funnel, lengths, loss, accuracy, tokens)."""
    from distill.report import ReportConfig
    from distill.report import run as run_report

    summary = run_stage(run_report, ReportConfig(run_dir=run_dir, output=output))
    print(f"distill report: {summary['report']} ({len(summary['charts'])} charts)")
