"""`miaudit` command line: a thin layer over the Python API.

User mistakes (``UserError``, and a full disk or a permission problem) print one line
``miaudit: error: ...`` on stderr and exit 2; ``--debug`` shows the traceback. Ctrl-C stops
cleanly, says how to resume and exits 130.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import sys
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn

from miaudit.errors import UserError
from miaudit.rundir import RunDir

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Audit ML models for membership-inference leakage: which records leak, why, and what defences buy.",
)
_STATE = {"debug": False, "quiet": False}
err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False, soft_wrap=True)  # piped output: long lines and URLs stay whole


class _EtaColumn(ProgressColumn):
    """Time left at the bar's average pace since it opened (``miaudit.progress.BarClock``)."""

    def render(self, task):  # noqa: ANN001, ANN201
        from rich.text import Text

        from miaudit.progress import format_seconds

        clock = task.fields.get("clock")
        eta = clock.eta() if clock is not None and not task.finished else None
        return Text("" if task.finished else f"~{format_seconds(eta)} left" if eta is not None else "", style="progress.remaining")


class RichProgress:
    """Progress bars on stderr (one per pool member and one per stage), each with an overall estimate."""

    def __init__(self, console: Console) -> None:
        from miaudit.progress import NestedBars

        self.console = console
        self._progress: Progress | None = None
        self._bars = NestedBars()

    @contextlib.contextmanager
    def live(self) -> Iterator[RichProgress]:
        self._progress = Progress(
            TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            _EtaColumn(), console=self.console, transient=False,
        )
        with self._progress:
            yield self
        self._progress = None

    @contextlib.contextmanager
    def bar(self, description: str, total: int | None) -> Iterator:
        if self._progress is None:
            yield lambda n=1: None
            return
        progress = self._progress
        transient = description.startswith("member")
        clock = self._bars.open(description, total)
        task = progress.add_task(description, total=total, clock=clock)

        def refresh() -> None:  # every open bar: a member's epochs move the pool's share too
            for t in progress.tasks:
                c = t.fields.get("clock")
                if c is not None and not t.finished:
                    progress.update(t.id, completed=c.completed)

        def advance(n: int = 1) -> None:
            clock.advance(n)
            self._bars.advanced()
            refresh()

        try:
            yield advance
        finally:
            self._bars.close(clock)
            refresh()
            if transient:
                progress.remove_task(task)

    def stage(self, name: str) -> None:
        if self._progress is not None:
            self._progress.console.print(f"[bold]{name}[/bold]")

    def info(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(message, markup=False)


def _progress():  # noqa: ANN202
    from miaudit.progress import LineProgress, NullProgress

    if _STATE["quiet"]:
        return contextlib.nullcontext(NullProgress())
    if not err_console.is_terminal:  # a log file or a pipe: plain lines as work finishes, not bars at the end
        return contextlib.nullcontext(LineProgress(_write_err))
    return RichProgress(err_console).live()


def _write_err(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def default_out(config: Path | None) -> Path:
    """`runs/<config stem>` (or `runs/default`): the same command always resumes the same directory."""
    return Path("runs") / (config.stem if config is not None else "default")


@app.callback()
def _global(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks for errors (before or after the command)")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress output (before or after the command)")] = False,
) -> None:
    _STATE["debug"] = debug or _STATE["debug"]
    _STATE["quiet"] = quiet or _STATE["quiet"]


#: flags accepted anywhere on the command line (before `--`), before or after the command
_GLOBAL_FLAGS = {"--debug": "debug", "--quiet": "quiet", "-q": "quiet"}


def _take_global_flags(args: list[str]) -> list[str]:
    """Set ``_STATE`` from ``--debug``/``--quiet`` wherever they stand; return the other arguments."""
    rest: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            return rest + args[i:]
        if arg in _GLOBAL_FLAGS:
            _STATE[_GLOBAL_FLAGS[arg]] = True
        else:
            rest.append(arg)
    return rest


ConfigArg = Annotated[Optional[Path], typer.Argument(help="YAML config (default: the embedded synthetic-purchase audit)")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", "-o", help="run directory (default: runs/<config name>)")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")]
ForceOpt = Annotated[bool, typer.Option("--force", help="delete a run directory holding another config and start over")]


@app.command()
def run(
    config: ConfigArg = None,
    out: OutOpt = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", "-s", help="override a config key, e.g. train.epochs=30")] = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train a pool of models, compute signals, run the attacks, write a run directory."""
    from miaudit.pipeline.configure import load_config
    from miaudit.report.summary import format_summary
    from miaudit.pipeline.run import run_audit

    _STATE["quiet"] = quiet or _STATE["quiet"]
    cfg = load_config(config, set_ or [])
    out = out or default_out(config)
    with _progress() as progress:
        results = run_audit(cfg, out, force=force, progress=progress)
    sys.stdout.write(format_summary(results))
    sys.stdout.write(f"run directory: {out}\n")
    _say_report(out)


@app.command()
def analyze(
    run_dir: Annotated[Path, typer.Argument(help="a finished `miaudit run` directory")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", "-s", help="override an analysis key, e.g. analysis.alpha=0.001")] = None,
    compare: Annotated[Optional[list[Path]], typer.Option("--compare", "-c", help="another run (e.g. another seed) for the stability of the vulnerable set; repeatable")] = None,
    quiet: QuietOpt = False,
    allow_plugins: Annotated[bool, typer.Option("--allow-plugins", help="import the plugins the run's config names (runs their code)")] = False,
) -> None:
    """(Re)run the vulnerability analysis of a finished run: which records leak, and why."""
    from miaudit.plugins import allow_run_dir_plugins
    from miaudit.report.summary import format_summary
    from miaudit.pipeline.analysis import reanalyze_run

    _STATE["quiet"] = quiet or _STATE["quiet"]
    with allow_run_dir_plugins(allow_plugins), _progress() as progress:
        results = reanalyze_run(run_dir, set_ or [], compare or [], progress=progress)
    from miaudit.report.render import try_write_report

    try_write_report(run_dir)  # the page shows the new analysis
    sys.stdout.write(format_summary(results))
    sys.stdout.write(f"run directory: {run_dir} (vulnerable_records.csv, figures/)\n")


@app.command()
def audit(
    signals: Annotated[Path, typer.Option("--signals", help="signals .npz: logits, labels, in_mask [, population_logits, population_labels]")],
    out: Annotated[Path, typer.Option("--out", "-o", help="run directory for results.json, scores/ and figures/")],
    config: ConfigArg = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", "-s", help="override a config key, e.g. audit.attacks=[loss,rmia-offline]")] = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Audit models trained anywhere from their signals file: the same attacks, metrics and outputs as `run`."""
    from miaudit.pipeline.audit_signals import audit_signals, load_audit_config
    from miaudit.report.summary import format_summary
    from miaudit.signals.file import load_signals_file

    _STATE["quiet"] = quiet or _STATE["quiet"]
    sig = load_signals_file(signals)
    cfg = load_audit_config(config, set_ or [], n_models=sig.n_models)
    with _progress() as progress:
        results = audit_signals(sig, out, cfg, force=force, progress=progress, source_path=signals)
    sys.stdout.write(format_summary(results))
    sys.stdout.write(f"run directory: {out}\n")
    _say_report(out)


@app.command("export-signals")
def export_signals_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a finished `miaudit run` directory")],
    file: Annotated[Path, typer.Argument(help="signals .npz to write (the format `miaudit audit --signals` reads)")],
) -> None:
    """Write a run's signals as a signals file that `miaudit audit --signals` reads."""
    from miaudit.signals.file import export_signals

    export_signals(run_dir, file)
    sys.stdout.write(f"signals written to {file}\n")


@app.command()
def datasets() -> None:
    """Every dataset, the files it expects, and whether they are found here."""
    from miaudit.data import DATASETS

    for name, spec in DATASETS.items():
        found = spec.find_dir(None)
        if not spec.files:
            status = "built in"
        elif found is not None:
            status = f"found in {found}"
        else:
            where = ", ".join(spec.default_dirs) if spec.default_dirs else "set data.data_dir"
            status = f"not found ({where})"
        out_console.print(f"{name:<20} {spec.kind:<8} {status}", markup=False)
        out_console.print(f"    {spec.description}", markup=False)
        for f in spec.files:
            out_console.print(f"    file: {' or '.join(f.names)} — {f.description}", markup=False)
        if spec.url:
            out_console.print(f"    download: {spec.url} (data.params.download: true)", markup=False)


@app.command()
def sweep(
    config: Annotated[Path, typer.Argument(help="sweep YAML: a base config and the defence variants to compare")],
    out: Annotated[Path, typer.Option("--out", "-o", help="sweep directory (variants/, sweep.csv, sweep.md, figures/)")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", "-s", help="override a config key in every variant")] = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run every defence variant of a sweep (each a full run, resumable) and tabulate utility against privacy."""
    from miaudit.pipeline.sweep import run_sweep

    _STATE["quiet"] = quiet or _STATE["quiet"]
    with _progress() as progress:
        run_sweep(config, out, overrides=set_ or [], force=force, progress=progress)
    sys.stdout.write((out / "sweep.md").read_text(encoding="utf-8").split("\n## ", 1)[0])
    sys.stdout.write(f"sweep directory: {out}\n")
    _say_report(out)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="a finished `miaudit run` or `audit` directory, or a `miaudit sweep` directory")],
) -> None:
    """(Re)build report.html and report.md of a finished run or sweep, from the files in its directory."""
    from miaudit.report.render import rebuild_report

    html, md = rebuild_report(run_dir)
    sys.stdout.write(f"report: {html} (and {md.name} beside it)\n")


def _say_report(out: Path) -> None:
    if RunDir(out).report_html.is_file():
        sys.stdout.write(f"report: {RunDir(out).report_html}\n")


@app.command("config")
def config_cmd(
    config: ConfigArg = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", "-s", help="override a config key, e.g. train.epochs=30")] = None,
    reference: Annotated[bool, typer.Option("--reference", help="print every key with its type, default and meaning (Markdown)")] = False,
) -> None:
    """Print the resolved configuration (YAML) a run would use, or the full configuration reference."""
    if reference:
        from miaudit.config_reference import reference_markdown

        sys.stdout.write(reference_markdown())
        return
    from miaudit.pipeline.configure import load_config

    sys.stdout.write(load_config(config, set_ or []).to_yaml())


@app.command("list")
def list_(what: Annotated[str, typer.Argument(help="attacks | models | datasets | recipes | defences")]) -> None:
    """List a registry: attacks, models, datasets, recipes (training-time defences) or defences (inference-time)."""
    from miaudit.attacks import ATTACKS
    from miaudit.data import DATASETS
    from miaudit.defences import DEFENCES
    from miaudit.errors import ConfigError
    from miaudit.models import MODELS
    from miaudit.training.recipes import RECIPES

    registries = {"attacks": ATTACKS, "models": MODELS, "datasets": DATASETS, "recipes": RECIPES, "defences": DEFENCES}
    if what not in registries:
        raise ConfigError(f"list {what!r}: choose one of {', '.join(registries)}")
    for name, spec in registries[what].items():
        out_console.print(f"{name:<22} {spec.description}", markup=False)


# typer >= 0.29 vendors its own click and roots every command-line error in TyperException;
# Exit and Abort are typer's own classes. Nothing here imports click (not a dependency).
_EXIT = (typer.Exit,)
_ABORT = (typer.Abort,)
_USAGE_ERRORS = (typer.TyperException,)

#: OS errors the user fixes (free space, permissions, a name too long), reported like a UserError
_USER_OS_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG)

#: how a command ends that prints one line instead of what it warned about on the way
_ONE_LINE_ENDINGS = (UserError, KeyboardInterrupt, typer.Abort, typer.TyperException, OSError, MemoryError)


class _Held(logging.Handler):
    """Log records held back while a command runs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _held_warnings() -> Iterator[None]:
    """Hold back warnings (Python's and logged ones) until the command ends: shown after a success,
    dropped when it ends in a user error, whose one line says what matters (``--debug`` shows all)."""
    root = logging.getLogger()
    held, handlers = _Held(), root.handlers[:]
    root.handlers = [held]
    failed = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            yield
    except BaseException as exc:
        failed = isinstance(exc, _ONE_LINE_ENDINGS) and not _STATE["debug"]
        raise
    finally:
        root.handlers = handlers
        if not failed:  # outside catch_warnings: shown, not recorded again
            for record in held.records:
                root.handle(record)
            for w in caught:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", category=UserWarning, module="miaudit")
    _STATE.update(debug=False, quiet=False)
    args = _take_global_flags(list(sys.argv[1:] if argv is None else argv))
    try:
        with _held_warnings():
            code = app(args=args, prog_name="miaudit", standalone_mode=False)
    except _EXIT as exc:
        return exc.exit_code
    except _USAGE_ERRORS as exc:
        # an unknown command or option, a missing argument: one line, and where to look
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        message = " ".join(str(exc.format_message()).split())
        err_console.print(f"miaudit: error: {message}{where}", markup=False, soft_wrap=True)
        return 2
    except (*_ABORT, KeyboardInterrupt):
        return _interrupted()
    except UserError as exc:
        if _STATE["debug"]:
            traceback.print_exc()
        message = " ".join(str(exc).split())  # always one line
        err_console.print(f"miaudit: error: {message}", markup=False, soft_wrap=True)
        return 2
    except MemoryError:
        if _STATE["debug"]:
            traceback.print_exc()
        err_console.print("miaudit: error: out of memory; use fewer records, models or classes (or a larger machine)",
                          markup=False, soft_wrap=True)
        return 2
    except OSError as exc:
        if exc.errno not in _USER_OS_ERRORS:
            raise
        if _STATE["debug"]:
            traceback.print_exc()
        # a full disk or a permission problem outside miaudit's own writers (which name the file themselves)
        where = f"{exc.filename}: " if exc.filename else ""
        err_console.print(f"miaudit: error: {where}{exc.strerror or exc}", markup=False, soft_wrap=True)
        return 2
    if code == 130:  # typer hands Ctrl-C (KeyboardInterrupt) back as exit code 130
        return _interrupted()
    return code if isinstance(code, int) else 0


def _interrupted() -> int:
    err_console.print(
        "miaudit: interrupted; finished models and artefacts are kept — rerun the same command to resume",
        markup=False, soft_wrap=True,
    )
    return 130


if __name__ == "__main__":
    sys.exit(main())
