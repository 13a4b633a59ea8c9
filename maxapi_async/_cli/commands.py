"""``maxapi-async``: the command line (also ``python -m maxapi_async``).

::

    maxapi-async demo                                   # a fake MaxAPI on loopback, every path
    maxapi-async generate "a glass cube" --aspect-ratio 16:9 --out images/
    maxapi-async edit "make it night" -i cube.png beach.png --out images/
    maxapi-async batch prompts.txt --concurrency 8 --budget 2.5 --out images/ --dry-run
    maxapi-async generate "a glass cube" --no-wait --json > task.json
    maxapi-async task wait TASK_ID --out images/
    maxapi-async sizes | prices | fake-server

Global options (before or after the command): ``--api-key`` (else ``MAXAPI_KEY``),
``--base-url`` (else ``MAXAPI_BASE_URL``), ``--timeout``, ``--task-timeout``, ``--json``
(one JSON document on stdout), ``-q`` (no progress or notes on stderr), ``-v`` (log requests).

Exit codes (``_cli_output``): 0 success; 1 the service or a task failed (or a batch left
items unfinished); 2 bad arguments or configuration (nothing was sent); 3 paid for but not
saved (the message names the URLs or the task to fetch it again); 130 interrupted. Errors
are one line on stderr, ``maxapi-async: error: <message>``, never a traceback. Every local
check (where images go, reference files, the journal's lock) runs before a paid request.
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
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from .._client.client import AsyncMaxAPI
from .._client.handles import TaskHandle
from .._client.hooks import log_to_stderr
from .._protocol import catalog
from .._protocol.errors import (
    APIError,
    ConfigurationError,
    InvalidRequestError,
    MaxAPIError,
    MaxAPIWarning,
    NotFoundError,
    ResponseError,
    TaskFailedError,
)
from .._protocol.models import ImageAsset
from .._protocol.pricing import PRICES, format_credits
from .._protocol.tasks import TaskKind
from .._version import __version__
from .batch import cmd_batch
from .input import (
    add_globals,
    add_image_options,
    check_out_folder,
    image_options,
    make_client,
    non_negative_float,
    positive_int,
)
from .output import (
    EXIT_FAILED,
    EXIT_OK,
    PROG,
    CommandError,
    Output,
    asset_json,
    deliver,
    size_text,
    slug,
    submitted,
    timed,
    wait_with_progress,
    with_real_size,
)
from .plan import plan_call

__all__ = ["main"]

TASK_KINDS = ("generation", "edit", "operation")


# -- generate and edit ------------------------------------------------------------------


def _check_where_images_go(args: argparse.Namespace, options: dict[str, Any]) -> None:
    """Before the paid request: the folder the images will be saved in takes files."""
    if args.out is not None:
        check_out_folder(args.out)
    elif options.get("response_format") == "b64_json" and not args.no_wait:
        check_out_folder(Path("."), "the current folder (where inline images are saved)")


async def cmd_generate(args: argparse.Namespace, out: Output) -> int:
    options = image_options(args)
    if args.dry_run:
        return await plan_call(args, out, options, None)
    _check_where_images_go(args, options)
    async with make_client(args) as client:
        if not (args.queued or args.no_wait):
            result = await timed(client.images.generate(args.prompt, **options), out, "generating")
            await deliver(result, args, out, slug(args.prompt))
            return EXIT_OK
        handle = await client.images.generate(args.prompt, wait=False, **options)
        if args.no_wait:
            return submitted(handle, out, args)
        result = await wait_with_progress(handle, out, args.timeout, args)
        await deliver(result, args, out, slug(args.prompt), task=handle)
    return EXIT_OK


async def cmd_edit(args: argparse.Namespace, out: Output) -> int:
    options = image_options(args)
    images = [Path(p) for p in args.images]
    if args.dry_run:
        return await plan_call(args, out, options, images)
    _check_where_images_go(args, options)
    async with make_client(args) as client:
        if not (args.queued or args.no_wait):
            result = await timed(client.images.edit(args.prompt, images, **options), out, "editing")
            await deliver(result, args, out, slug(args.prompt))
            return EXIT_OK
        handle = await client.images.edit(args.prompt, images, wait=False, **options)
        if args.no_wait:
            return submitted(handle, out, args)
        result = await wait_with_progress(handle, out, args.timeout, args)
        await deliver(result, args, out, slug(args.prompt), task=handle)
    return EXIT_OK


# -- tasks ------------------------------------------------------------------------------------


def _kinds(task_id: str, kind: str | None) -> list[TaskKind]:
    """Where to look for a task: ``--kind``, else what its id says (``operations/...``), else
    the image endpoints, then the Gemini operations."""
    if kind is not None:
        return [kind]  # type: ignore[list-item]
    if task_id.startswith("operations/"):
        return ["operation"]
    return ["generation", "edit", "operation"]


async def _find_task(client: AsyncMaxAPI, args: argparse.Namespace) -> TaskHandle[Any]:
    """A handle on the task, polled once at the endpoint that knows it."""
    kinds = _kinds(args.task_id, args.kind)
    refs = {name: getattr(args, name, None) for name in ("model", "aspect_ratio", "resolution")}
    for kind in kinds:
        handle = client.tasks.get(args.task_id, kind=kind, **refs)
        try:
            await handle.refresh()
        except NotFoundError as exc:
            if args.kind is not None:
                raise CommandError(
                    f"no {kind} task {args.task_id} ({exc}); leave out --kind to look for it at every "
                    "endpoint",
                    EXIT_FAILED,
                    cause=exc,
                ) from None
            continue
        return handle
    raise CommandError(
        f"no task {args.task_id} at the {', '.join(kinds)} endpoint{'s' if len(kinds) > 1 else ''} "
        "(HTTP 404 from each)",
        EXIT_FAILED,
    )


async def cmd_task_wait(args: argparse.Namespace, out: Output) -> int:
    if args.out is not None:
        check_out_folder(args.out)
    async with make_client(args) as client:
        handle = await _find_task(client, args)
        result = await wait_with_progress(handle, out, args.timeout, args)
        await deliver(result, args, out, slug(args.task_id), task=handle)
    return EXIT_OK


async def cmd_task_status(args: argparse.Namespace, out: Output) -> int:
    async with make_client(args) as client:
        handle = await _find_task(client, args)
        status = handle.status
        images: list[ImageAsset] = []
        reason = None
        if status.state == "succeeded":  # its images, with sizes read from them
            result = await handle.wait()
            images = [await with_real_size(asset, None) for asset in result.images]
        elif status.state == "failed":
            try:
                await handle.wait()
            except TaskFailedError as exc:
                reason = str(exc)
    progress = f" {status.progress:g}%" if status.progress is not None else ""
    out.line(f"{handle.id}  {handle.kind}  {status.state}{progress}" + (f"  {reason}" if reason else ""))
    for asset in images:
        out.line(f"{size_text(asset):>9}  {asset.url or '<inline>'}")
    out.document(
        {
            "id": handle.id,
            "kind": handle.kind,
            "state": status.state,
            "word": status.word,
            "progress": status.progress,
            "error": reason,
            "images": [asset_json(a) for a in images],
        }
    )
    return EXIT_OK


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

    dry_run: dict[str, Any] = {
        "action": "store_true",
        "help": "print what would be sent and its credits; send nothing",
    }
    gen = command("generate", "generate images from a prompt", cmd_generate)
    gen.add_argument("prompt")
    add_image_options(gen, single=True)
    gen.add_argument("--dry-run", **dry_run)

    edit = command("edit", "edit or compose from reference images", cmd_edit)
    edit.add_argument("prompt")
    edit.add_argument(
        "-i", "--image", dest="images", action="extend", nargs="+", required=True, metavar="IMAGE",
        help="a reference image file (PNG, JPEG, WebP or GIF); repeat or list several",
    )  # fmt: skip
    add_image_options(edit, single=True)
    edit.add_argument("--dry-run", **dry_run)

    batch = command("batch", "run many prompts: one prompt or JSON request per line", cmd_batch)
    batch.add_argument("file", metavar="FILE", help="the prompts file, or - for stdin")
    add_image_options(batch, single=False)
    batch.add_argument(
        "--concurrency", type=positive_int, default=16, help="submissions at once (default 16)"
    )
    batch.add_argument(
        "--budget", type=non_negative_float, metavar="CREDITS", help="estimated credits not to pass"
    )
    journal = batch.add_mutually_exclusive_group()
    journal.add_argument(
        "--journal", metavar="PATH",
        help="a .jsonl file or folder (default: FILE's name.journal.jsonl in --out, or here)",
    )  # fmt: skip
    journal.add_argument("--no-journal", action="store_true", help="keep no journal: a rerun starts over")
    batch.add_argument("--fail-fast", action="store_true", help="stop at the first failure")
    batch.add_argument("-o", "--out", type=Path, metavar="DIR", help="save the images here, named by key")
    batch.add_argument("--dry-run", **dry_run)

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
        sub.add_argument(
            "--kind",
            choices=TASK_KINDS,
            help="where the task is (default: found from the id, else each tried)",
        )
        if name == "wait":
            sub.add_argument("-a", "--aspect-ratio", metavar="W:H", help="the ratio the task was asked for")
            sub.add_argument("--model", help="the model the task was asked of")
            sub.add_argument("--resolution", metavar="TIER", help="the tier the task was asked for")
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
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command as given (to resume a batch)
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
