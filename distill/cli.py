"""The `distill` command line: one Typer command per pipeline stage.

    distill --help
    distill <stage> --help

Each option has one home: the field of the stage's config dataclass in `distill.configs`
(`distill.options.opt` metadata carries its flags and help text). `stage_command` turns the
dataclass into the Typer command; the command function receives the built config and calls the
stage's entry function. The stages themselves (and torch, transformers, trl, vllm) are imported
only when a command runs, so `distill --help` answers at once. Errors a user can cause print one line and exit with status 2; a stage
whose work failed (`RunFailed`) prints one line and exits with 1; Ctrl-C says how to resume and
exits with 130.

Inputs and outputs follow one rule: `--input/-i` is what the previous stage wrote, `--output/-o`
the folder a stage writes, anything else is named by its role (`--prompts`, `--teacher`,
`--student`, `--benchmark` ...). Old spellings (`filter INPUT`, `train --data`, `eval --model`
...) still work for one release and print a deprecation warning.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import sys
import typing
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperCommand, TyperOption

from distill import __version__
from distill.configs import (
    DemoConfig,
    EvalConfig,
    FilterConfig,
    GenerateConfig,
    PushConfig,
    ReportConfig,
    SelectConfig,
    SweepConfig,
    TrainConfig,
)
from distill.errors import UserError
from distill.options import CLI, NESTED, Opt

R = TypeVar("R")

app = typer.Typer(
    name="distill",
    help="Distil a reasoning teacher into small students: generate → filter → train → eval → push.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help: full flag names and wrapped descriptions at any width (80 columns too),
    # and text such as `distill[ray]` shown as written, not read as markup
    rich_markup_mode=None,
)


def fail(message: str, code: int = 2) -> None:
    """Print one clear error line to stderr and exit with `code` (2: a usage error)."""
    print(f"distill: error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def warn(message: str) -> None:
    """Print one warning line to stderr."""
    print(f"distill: warning: {message}", file=sys.stderr)


def run_stage(fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """Call a stage entry function: a `UserError` becomes one line and its exit status (2, or 1 for
    `RunFailed`); Ctrl-C one line saying the stage resumes, and status 130."""
    try:
        return fn(*args, **kwargs)
    except UserError as e:
        fail(str(e), e.exit_code)
        raise  # unreachable
    except KeyboardInterrupt:
        print(
            "distill: interrupted — re-run the same command to resume (finished work is kept)",
            file=sys.stderr,
        )
        raise typer.Exit(130) from None


# ---------------------------------------------------------------------------- config -> command


@dataclasses.dataclass(frozen=True)
class _Option:
    """One command-line option: the config field it fills (`path`, one level of nesting at most)."""

    path: tuple[str, ...]
    opt: Opt
    hint: Any  # the field's type
    default: Any  # inspect.Parameter.empty: required
    nested: type | None = None  # the dataclass holding the field when nested

    @property
    def name(self) -> str:
        return self.path[-1]

    @property
    def flag(self) -> str:
        """The option's main long name, as messages spell it."""
        longs = [f for f in self.opt.flags if f.startswith("--")]
        return longs[0].split("/")[0] if longs else "--" + self.name.replace("_", "-")

    def parameter(self) -> inspect.Parameter:
        info = typer.Option(*self.opt.flags, help=self.opt.help)
        return inspect.Parameter(
            self.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=self.default,
            annotation=Annotated[self.opt.type or self.hint, info],
        )


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory() or None  # an empty list: "not given" (the factory fills it)
    return inspect.Parameter.empty


def config_options(config: type, _outer: tuple[str, ...] = ()) -> list[_Option]:
    """The command-line options of a config dataclass, in field order (nested dataclasses inline)."""
    hints = typing.get_type_hints(config)
    found: list[_Option] = []
    for f in dataclasses.fields(config):
        if NESTED in f.metadata:
            inner = config_options(hints[f.name], (*_outer, f.name))
            found += [dataclasses.replace(o, nested=hints[f.name]) for o in inner]
        elif CLI in f.metadata:
            found.append(_Option((*_outer, f.name), f.metadata[CLI], hints[f.name], _field_default(f)))
    return found


def build_config(config: type, options: Sequence[_Option], values: dict[str, Any]) -> Any:
    """The config from the command line's values: converted, nested dataclasses built, and a
    value left out (None) so that the field's own default applies."""
    kwargs: dict[str, Any] = {}
    inner: dict[str, tuple[type, dict[str, Any]]] = {}
    for o in options:
        value = values[o.name]
        if value is None:
            continue
        if o.opt.convert is not None:
            value = o.opt.convert(value, o.flag)
        elif isinstance(value, tuple):
            value = list(value)
        if o.nested is None:
            kwargs[o.name] = value
        else:
            inner.setdefault(o.path[0], (o.nested, {}))[1][o.name] = value
    for outer, (cls, kw) in inner.items():
        kwargs[outer] = cls(**kw)
    return config(**kwargs)


class _StageCommand(TyperCommand):
    """A command that still accepts the old spellings of its options, with a warning."""

    renames: typing.ClassVar[dict[str, str]] = {}  # old flag -> new flag
    positional: typing.ClassVar[str | None] = None  # the flag an old positional argument stands for

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self.modernise(list(args)))

    def modernise(self, args: list[str]) -> list[str]:
        """`args` with old spellings replaced by the new ones (a warning for each)."""
        takes_value = {
            name
            for p in self.params
            if isinstance(p, TyperOption) and not p.is_flag and not p.count
            for name in p.opts
        }
        out: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--":
                out += args[i:]
                break
            name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
            if name in self.renames:
                warn(
                    f"{name} is deprecated, use {self.renames[name]} (the old spelling goes in the next release)"
                )
                name = self.renames[name]
                arg = name + eq + value
            if arg.startswith("-") and len(arg) > 1:
                out.append(arg)
                if name in takes_value and not eq and i + 1 < len(args):
                    i += 1
                    out.append(args[i])
            elif self.positional and self.positional not in out:
                warn(
                    f"a positional {self.positional.lstrip('-').upper()} is deprecated, use "
                    f"{self.positional} {arg} (the old spelling goes in the next release)"
                )
                out += [self.positional, arg]
            else:
                out.append(arg)
            i += 1
        return out


def stage_command(
    name: str, config: type, *, extra: Sequence[inspect.Parameter] = ()
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register `fn(cfg, **extra)` as `distill NAME`: one option per `opt` field of `config`
    (see `distill.options`), plus the `extra` CLI-only parameters. The config is built inside
    `run_stage`, so a `UserError` from a converter or `__post_init__` is one line, not a traceback."""
    options = config_options(config)
    names = [o.name for o in options] + [p.name for p in extra]
    assert len(set(names)) == len(names), f"{name}: two options share a parameter name"
    command_cls = type(
        f"{config.__name__}Command",
        (_StageCommand,),
        {
            "renames": {old: o.flag for o in options for old in o.opt.deprecated},
            "positional": next((o.flag for o in options if o.opt.was_positional), None),
        },
    )

    def register(fn: Callable[..., None]) -> Callable[..., None]:
        def command(**values: Any) -> None:
            cli_only = {p.name: values.pop(p.name) for p in extra}
            cfg = run_stage(build_config, config, options, values)
            fn(cfg, **cli_only)

        command.__signature__ = inspect.Signature([o.parameter() for o in options] + list(extra))  # type: ignore[attr-defined]
        command.__doc__ = fn.__doc__
        command.__name__ = fn.__name__
        app.command(name, cls=command_cls)(command)
        return fn

    return register


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
    from distill.noise import quiet_libraries

    quiet_libraries()


# ---------------------------------------------------------------------------- the stages


@stage_command("generate", GenerateConfig)
def generate(cfg: GenerateConfig) -> None:
    """Sample reasoning traces from a teacher: prompts × n samples → trace shards (resumable)."""
    from distill.generate import run

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    run_stage(run, cfg)


@stage_command("filter", FilterConfig)
def filter_cmd(cfg: FilterConfig) -> None:
    """Verify, clean, decontaminate and dedupe traces; write kept/, rejected/ and funnel.json."""
    from distill.filter import run

    run_stage(run, cfg)


@stage_command("select", SelectConfig)
def select(cfg: SelectConfig) -> None:
    """Pick a budgeted subset of filtered traces (s1 / LIMO style) that `distill train` takes as is."""
    from distill.select import run

    report = run_stage(run, cfg)
    sel = report["selected"]
    print(
        f"distill select: {sel['traces']} traces from {sel['prompts']} prompts "
        f"({report['strategy']}, budget {report['budget']}) -> {cfg.output}"
    )


@stage_command("train", TrainConfig)
def train_cmd(cfg: TrainConfig) -> None:
    """Train a student (TRL): SFT on kept traces (LoRA, QLoRA or full), or on-policy distillation."""
    from distill.train import run

    if cfg.objective == "opd":
        from distill.onpolicy import run

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    summary = run_stage(run, cfg)
    if not cfg.plan and cfg.show_example is None and summary:  # the details are in the manifest
        where = summary.get("merged") or summary.get("model") or cfg.output
        print(
            f"distill train: {summary.get('steps', '?')} steps -> {where} (details: {summary.get('manifest')})"
        )


@stage_command("eval", EvalConfig)
def eval_cmd(cfg: EvalConfig) -> None:
    """Score a model on AIME / MATH-500 / GPQA … with the R1 protocol: pass@1, cons@n, tokens."""
    from distill.evaluate import run

    run_stage(run, cfg)


@stage_command("push", PushConfig)
def push(cfg: PushConfig) -> None:
    """Push a model (+ traces) with model and dataset cards to the Hugging Face Hub."""
    from distill.hub import run

    summary = run_stage(run, cfg)
    where = f"staged in {summary['staged']}" if not summary["uploaded"] else f"uploaded to {summary['repo']}"
    print(
        f"distill push: {summary['kind']} model {where}"
        + (f"; {summary['rows']} traces" if summary["rows"] else "")
    )


STUDENT_RESULTS = inspect.Parameter(
    "student_results",
    inspect.Parameter.KEYWORD_ONLY,
    default=None,
    annotation=Annotated[
        str | None,
        typer.Option(
            help="`distill eval` output on the prompts: student-aware s1 / limo (as distill select)."
        ),
    ],
)


@stage_command("sweep", SweepConfig, extra=[STUDENT_RESULTS])
def sweep(cfg: SweepConfig, student_results: str | None) -> None:
    """Accuracy against data budget: select → train → eval per (strategy, budget, seed), one chart."""
    from distill.sweep import run

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if student_results:  # a select option every point shares: --select student_results=...
        cfg.select["student_results"] = student_results
    result = run_stage(run, cfg)
    if cfg.plan:
        print(
            f"distill sweep --plan: {len(result['points'])} points, {result['gpu_hours']:.2f} GPU hours of training"
        )
    else:
        n = len(result["points"])
        print(
            f"distill sweep: {n} point{'s' if n != 1 else ''} -> {cfg.output}/sweep.json, {result['chart']}"
        )


@stage_command("report", ReportConfig)
def report(cfg: ReportConfig) -> None:
    """Render a run folder into report.md + PNG charts (funnel, lengths, loss, accuracy, tokens)."""
    from distill.report import run

    summary = run_stage(run, cfg)
    print(f"distill report: {summary['report']} ({len(summary['charts'])} charts)")


@stage_command("demo", DemoConfig)
def demo(cfg: DemoConfig) -> None:
    """Run a miniature R1 distillation end to end on CPU: teacher → traces → filter → students → eval → report."""
    from distill.demo import run

    run_stage(run, cfg, run_command)


def run_command(args: list[str]) -> None:
    """Run one `distill` command in-process, exactly as from a shell (`args` without `distill`).

    Raises `UserError` naming the command when it exits non-zero (its own error is printed first).
    """
    rc = app(args=args, prog_name="distill", standalone_mode=False)
    if rc not in (None, 0):
        raise UserError(f"distill {args[0]} exited with {rc}")
