"""``maxapi-async``: the command line (also ``python -m maxapi_async``).

::

    maxapi-async demo                                   # a fake MaxAPI on loopback, every path
    maxapi-async generate "a glass cube" --aspect-ratio 16:9 --out images/
    maxapi-async edit "make it night" -i cube.png beach.png --out images/
    maxapi-async batch prompts.txt --concurrency 8 --budget 2.5 --journal run.jsonl --out images/
    maxapi-async generate "a glass cube" --no-wait --json > task.json
    maxapi-async task wait TASK_ID --kind generation --out images/
    maxapi-async sizes | prices | fake-server

Global options (before or after the command): ``--api-key`` (else ``MAXAPI_KEY``),
``--base-url`` (else ``MAXAPI_BASE_URL``), ``--timeout``, ``--task-timeout``, ``--json``
(one JSON document on stdout), ``-q`` (no progress or notes on stderr), ``-v`` (log requests).

Exit codes: 0 success; 1 the service or a task failed (or a batch left items
unfinished); 2 bad arguments or configuration; 130 interrupted. Errors are one line
on stderr, ``maxapi-async: error: <message>``, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from .._batch.progress import BatchStatus
from .._batch.runner import Batch, Outcome
from .._client.client import AsyncMaxAPI
from .._client.hooks import log_to_stderr
from .._protocol import catalog
from .._protocol.errors import (
    APIError,
    ConfigurationError,
    InvalidRequestError,
    MaxAPIError,
    MaxAPIWarning,
    ResponseError,
)
from .._protocol.pricing import PRICES, format_credits
from .._version import __version__
from .input import (
    add_globals,
    add_image_options,
    image_options,
    non_negative_float,
    parse_batch_file,
    positive_int,
    read_lines,
)
from .output import (
    PROG,
    CommandError,
    Output,
    deliver,
    outcome_json,
    outcome_line,
    slug,
    submitted,
    timed,
    wait_with_progress,
)

__all__ = ["main"]

TASK_KINDS = ("generation", "edit", "operation")


# -- shared pieces ----------------------------------------------------------------------


def _make_client(args: argparse.Namespace) -> AsyncMaxAPI:
    key = args.api_key or os.environ.get("MAXAPI_KEY")
    if not key or not key.strip():
        raise CommandError("no API key: pass --api-key KEY or set the MAXAPI_KEY environment variable", 2)
    options: dict[str, Any] = {}
    if getattr(args, "task_timeout", None) is not None:
        options["task_timeout"] = args.task_timeout
    return AsyncMaxAPI(key, base_url=args.base_url, timeout=args.timeout, **options)


# -- commands ---------------------------------------------------------------------------


async def cmd_generate(args: argparse.Namespace, out: Output) -> int:
    async with _make_client(args) as client:
        options = image_options(args)
        if not (args.queued or args.no_wait):
            result = await timed(client.images.generate(args.prompt, **options), out, "generating")
        else:
            handle = await client.images.generate(args.prompt, wait=False, **options)
            if args.no_wait:
                return submitted(handle, out)
            result = await wait_with_progress(handle, out, args.timeout)
        await deliver(result, args, out, slug(args.prompt))
    return 0


async def cmd_edit(args: argparse.Namespace, out: Output) -> int:
    async with _make_client(args) as client:
        options = image_options(args)
        images = [Path(p) for p in args.images]
        if not (args.queued or args.no_wait):
            result = await timed(client.images.edit(args.prompt, images, **options), out, "editing")
        else:
            handle = await client.images.edit(args.prompt, images, wait=False, **options)
            if args.no_wait:
                return submitted(handle, out)
            result = await wait_with_progress(handle, out, args.timeout)
        await deliver(result, args, out, slug(args.prompt))
    return 0


async def cmd_task_wait(args: argparse.Namespace, out: Output) -> int:
    async with _make_client(args) as client:
        handle = client.tasks.get(args.task_id, kind=args.kind, aspect_ratio=args.aspect_ratio)
        result = await wait_with_progress(handle, out, args.timeout)
        await deliver(result, args, out, slug(args.task_id))
    return 0


async def cmd_task_status(args: argparse.Namespace, out: Output) -> int:
    async with _make_client(args) as client:
        handle = client.tasks.get(args.task_id, kind=args.kind)
        status = await handle.refresh()
    progress = f" {status.progress:g}%" if status.progress is not None else ""
    out.line(f"{handle.id}  {handle.kind}  {status.state}{progress}")
    out.document(
        {
            "id": handle.id,
            "kind": handle.kind,
            "state": status.state,
            "word": status.word,
            "progress": status.progress,
        }
    )
    return 0


# -- batch --------------------------------------------------------------------------------


async def cmd_batch(args: argparse.Namespace, out: Output) -> int:
    lines, base = read_lines(args.file)
    defaults = image_options(args)
    name = "stdin" if args.file == "-" else args.file
    items = parse_batch_file(lines, base=base, defaults=defaults, name=name)
    started = time.perf_counter()
    out.note(f"{len(items)} item{'s' if len(items) != 1 else ''} from {name}")
    async with _make_client(args) as client:
        status = BatchStatus(len(items), out.stderr, enabled=out.progress_bars)
        batch = Batch(
            client,
            items,
            concurrency=args.concurrency,
            budget=args.budget,
            journal=args.journal,
            fail_fast=args.fail_fast,
            progress=status.update,
            download_to=args.out,
        )
        outcomes: list[Outcome] = []
        status.start()
        try:
            async for outcome in batch:
                outcomes.append(outcome)
                if not out.json_mode:
                    status.line(outcome_line(outcome), out.stdout)
        finally:
            status.close()
    summary = batch.summary
    assert summary is not None  # set when the iteration ends
    seconds = time.perf_counter() - started
    order = {item.key: i for i, item in enumerate(items)}
    outcomes.sort(key=lambda o: order.get(o.key, len(order)))
    credits = f"{format_credits(summary.credits)} credits estimated"
    if summary.unpriced:
        plural = "s" if summary.unpriced != 1 else ""
        credits += f" (not counting {summary.unpriced} item{plural} of models without a price)"
    text = (
        f"{summary.done} done, {summary.restored} from the journal, {summary.failed} failed, "
        f"{summary.skipped} skipped; {credits}; {seconds:.1f} s"
    )
    if summary.stopped_by_budget:
        text += f"; stopped by the budget of {format_credits(args.budget)} credits"
    out.note(text)
    out.document(
        {
            "summary": {
                "total": summary.total,
                "done": summary.done,
                "restored": summary.restored,
                "failed": summary.failed,
                "skipped": summary.skipped,
                "credits": summary.credits,
                "remaining": summary.remaining,
                "stopped_by_budget": summary.stopped_by_budget,
                "unpriced": summary.unpriced,
                "seconds": round(seconds, 3),
            },
            "outcomes": [outcome_json(o) for o in outcomes],
        }
    )
    if summary.remaining:
        budget = format_credits(args.budget or 0)
        why = f"; the budget ({budget} credits) stopped the batch" if summary.stopped_by_budget else ""
        hint = "; rerun with the same --journal to finish them" if args.journal else ""
        raise CommandError(f"{len(summary.remaining)} of {summary.total} items not finished{why}{hint}", 1)
    return 0


# -- tables ----------------------------------------------------------------------------


def cmd_sizes(args: argparse.Namespace, out: Output) -> int:
    models = list(catalog.MODELS.values())
    if args.model is not None:
        spec = catalog.lookup_model(args.model)
        if spec is None:
            raise CommandError(f"unknown model {args.model!r} (known: {', '.join(catalog.MODELS)})", 2)
        models = [spec]
    doc: dict[str, list[dict[str, Any]]] = {}
    for spec in models:
        rows = doc.setdefault(spec.id, [])
        out.line(spec.id)
        tiers = spec.resolutions or (None,)
        out.line("  ratio  " + "  ".join(f"{t or 'size'}".rjust(9) for t in tiers))
        for ratio in spec.aspect_ratios:
            sizes = [(res, spec.sizes[(ratio, res)]) for res in tiers]
            cells = "  ".join(f"{w}x{h}".rjust(9) for _, (w, h) in sizes)
            out.line(f"  {ratio:>5}  {cells}")
            rows.extend(
                {"aspect_ratio": ratio, "resolution": res, "width": w, "height": h} for res, (w, h) in sizes
            )
    out.document({"models": doc})
    return 0


def cmd_prices(args: argparse.Namespace, out: Output) -> int:
    estimate = None
    if args.n is not None:  # checked before anything is printed: an error is the whole answer
        if catalog.lookup_model(args.model) is None:
            known = ", ".join(catalog.MODELS)
            raise CommandError(f"unknown model {args.model!r} (known: {known})", 2)
        estimate = PRICES.estimate(args.model, args.route_mode, args.n)
        if estimate is None:
            priced = ", ".join(sorted({m for m, _ in PRICES.prices}))
            raise CommandError(
                f"no published price for {args.model!r} yet, so no estimate (priced: {priced})", 2
            )
    rows = sorted(PRICES.prices.items())
    out.line(f"{'model':<32} {'route':<16} credits per image")
    for (model, route), price in rows:
        out.line(f"{model:<32} {route:<16} {format_credits(price)}")
    out.line("mix and the key's default order are estimated at the model's dearest route; 1 credit = 1 USD")
    doc: dict[str, Any] = {"prices": [{"model": m, "route_mode": r, "credits": p} for (m, r), p in rows]}
    if estimate is not None:
        route = args.route_mode or "the key's default order"
        images = f"{args.n} image{'s' if args.n != 1 else ''}"
        out.line(f"estimate: {images} of {args.model} on {route}: {format_credits(estimate)} credits")
        doc["estimate"] = {
            "model": args.model,
            "route_mode": args.route_mode,
            "n": args.n,
            "credits": estimate,
        }
    out.document(doc)
    return 0


# -- fake server and demo --------------------------------------------------------------


async def cmd_fake_server(args: argparse.Namespace, out: Output) -> int:
    from ..testing._serve import run_fake_server

    return await run_fake_server(
        args, echo=out.line, note=out.note, json_stdout=out.stdout if out.json_mode else None
    )


async def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    from .demo import run_demo

    echo = out.note if out.json_mode else out.line
    report = await run_demo(args.out if args.out is not None else Path("maxapi-demo"), echo=echo)
    out.document(report.to_json())
    return 0


# -- the parser ---------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (no usage dump) and exit code 2, like ours."""

    def error(self, message: str) -> NoReturn:
        raise CommandError(f"{message} (see: {self.prog} --help)", 2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Command line for MaxAPI's Gemini 2.5 Flash Image API (maxapi-async).",
        epilog="Start with: maxapi-async demo  (a fake MaxAPI on loopback; no key, no network)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_globals(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str, handler: Callable[..., Any] | None) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_globals(sub, top=False)
        if handler is not None:
            sub.set_defaults(handler=handler)
        return sub

    gen = command("generate", "generate images from a prompt", cmd_generate)
    gen.add_argument("prompt")
    add_image_options(gen, single=True)

    edit = command("edit", "edit or compose from reference images", cmd_edit)
    edit.add_argument("prompt")
    edit.add_argument(
        "-i", "--image", dest="images", action="extend", nargs="+", required=True, metavar="IMAGE",
        help="a reference image file (PNG, JPEG, WebP or GIF); repeat or list several",
    )  # fmt: skip
    add_image_options(edit, single=True)

    batch = command("batch", "run many prompts: one prompt or JSON request per line", cmd_batch)
    batch.add_argument("file", metavar="FILE", help="the prompts file, or - for stdin")
    add_image_options(batch, single=False)
    batch.add_argument(
        "--concurrency", type=positive_int, default=16, help="submissions at once (default 16)"
    )
    batch.add_argument(
        "--budget", type=non_negative_float, metavar="CREDITS", help="estimated credits not to pass"
    )
    batch.add_argument("--journal", metavar="PATH", help="a .jsonl file or folder: reruns resume from it")
    batch.add_argument("--fail-fast", action="store_true", help="stop at the first failure")
    batch.add_argument("-o", "--out", type=Path, metavar="DIR", help="save the images here, named by key")

    task = command("task", "follow a queued task", None)
    task_commands = task.add_subparsers(dest="task_command", metavar="ACTION", required=True)
    for name, help_text, handler in (
        ("wait", "wait for a task and fetch its images", cmd_task_wait),
        ("status", "poll a task once", cmd_task_status),
    ):
        sub = task_commands.add_parser(name, help=help_text, description=help_text)
        add_globals(sub, top=False)
        sub.set_defaults(handler=handler)
        sub.add_argument("task_id", metavar="ID")
        sub.add_argument("--kind", choices=TASK_KINDS, default="generation", help="default: generation")
        if name == "wait":
            sub.add_argument(
                "-a", "--aspect-ratio", metavar="W:H", help="the task's ratio, for sizes of URL images"
            )
            sub.add_argument("-o", "--out", type=Path, metavar="DIR", help="save the images here")

    command("sizes", "the output sizes of each model and aspect ratio", cmd_sizes).add_argument(
        "--model", help="one model only"
    )
    prices = command("prices", "the price table; -n N estimates a job", cmd_prices)
    prices.add_argument(
        "--model", default=catalog.DEFAULT_MODEL, help="for the estimate (default: %(default)s)"
    )
    prices.add_argument("--route-mode", choices=catalog.ROUTE_MODES, help="for the estimate")
    prices.add_argument("-n", type=positive_int, help="estimate the credits of N images")

    fake = command(
        "fake-server",
        "run a fake MaxAPI on 127.0.0.1 for local development (Ctrl-C stops it)",
        cmd_fake_server,
    )
    fake.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    fake.add_argument("--port", type=int, default=0, help="the API's port (default: a free one)")
    fake.add_argument("--cdn-port", type=int, default=0, help="the CDN's port (default: a free one)")
    fake.add_argument("--public-host", metavar="NAME", help="host name in the URLs it hands out")
    fake.add_argument(
        "--complete-after-polls", type=int, default=2, metavar="N", help="polls before a queued task is done"
    )
    fake.add_argument(
        "--complete-after-seconds", type=non_negative_float, metavar="S", help="finish tasks by time"
    )
    fake.add_argument("--poll-retry-after", type=non_negative_float, metavar="S", help="Retry-After on polls")
    fake.add_argument("--task-style", choices=("plain", "envelope", "camel", "result_data"))
    fake.add_argument("--no-idempotency", action="store_true", help="a repeated Idempotency-Key queues again")
    fake.add_argument("--strict", action="store_true", help="refuse body fields the wire spec does not list")

    demo = command("demo", "see every path work against a fake MaxAPI (no key, no network)", cmd_demo)
    demo.add_argument(
        "-o", "--out", type=Path, metavar="DIR", help="where to save the images (./maxapi-demo)"
    )
    return parser


# -- running ---------------------------------------------------------------------------------


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _cli_warnings() -> Iterator[None]:
    """MaxAPIWarning as one line on stderr, for the duration of the command."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", MaxAPIWarning)
        warnings.showwarning = _show_warning
        yield


def _fail(out: Output | None, message: str, code: int, error: BaseException | None = None) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    if out is not None and out.json_mode and not out.documented:  # one document, even on failure
        doc: dict[str, Any] = {"message": message, "exit_code": code}
        cause = error.cause if isinstance(error, CommandError) else error
        if isinstance(error, CommandError):
            doc.update(error.details)
        if cause is not None:
            doc["type"] = type(cause).__name__
            for name in ("status", "code", "request_id"):
                value = getattr(cause, name, None)
                if value is not None:
                    doc[name] = value
        print(json.dumps({"error": doc}, indent=2, default=str), file=sys.stdout, flush=True)
    return code


def _run(handler: Callable[[argparse.Namespace, Output], Any], args: argparse.Namespace, out: Output) -> int:
    outcome = handler(args, out)
    if inspect.iscoroutine(outcome):
        return int(asyncio.run(outcome))
    return int(outcome)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (``sys.exit(main())``)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help or --version (printed)
        return exc.code if isinstance(exc.code, int) else 2
    except CommandError as exc:  # a usage error: one line, like every other error
        given = sys.argv[1:] if argv is None else argv
        return _fail(Output(json_mode="--json" in given, quiet=False), str(exc), exc.code, exc)
    out = Output(json_mode=args.json, quiet=args.quiet)
    if args.verbose:
        log_to_stderr(logging.DEBUG, PROG)
    try:
        with _cli_warnings():
            return _run(args.handler, args, out)
    except KeyboardInterrupt:
        return _fail(None, "interrupted", 130)
    except CommandError as exc:
        return _fail(out, str(exc), exc.code, exc)
    except (InvalidRequestError, ConfigurationError) as exc:
        return _fail(out, str(exc), 2, exc)
    except (APIError, ResponseError, MaxAPIError) as exc:
        return _fail(out, str(exc), 1, exc)
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the interpreter closes it at exit
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(out, f"{where}{exc.strerror or exc}", 1, exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
