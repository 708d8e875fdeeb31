"""``python -m lead_load``: the landing check and the suppression list from a shell.

    python -m lead_load verify --run-id RUN_ID [--repair] [--json]
    python -m lead_load verify --window-start 2026-11-24 --window-end 2026-11-25
    python -m lead_load verify --api-task-id API_TASK_ID
    python -m lead_load suppress add [--reason TEXT] [--added-by WHO] [FILE | -]
    python -m lead_load suppress list [--json] [--unmasked]
    python -m lead_load suppress remove PHONE... | --file FILE

It reads the ledger and the platform through the same Airflow connections as the DAG
(``lead_warehouse`` or the connection the Variable ``lead_load_ledger_conn_id`` names, and
``agent_api_default``), so run it where Airflow's tasks run; ``--ledger-url`` points at a
ledger database directly.

``verify`` exit code: 0 nothing left to repair, 1 disagreements left, 2 the check could not
run (the reason on one line), nothing changed: among those reasons, a number list that could
not be read whole, or whose read misses too many imported rows to be trusted.

``suppress`` exit code (docs/suppression.md): 0 done; 1 ``remove`` was given phones that
were not on the list (the others were removed); 2 nothing changed: a usage error, the ledger
unreachable, or a bad line in the phones given (each is named, its phone masked, and none of
the list is applied: never half-applied).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any, NoReturn, TextIO

from agent_api.masking import mask_phone, mask_phones_in

EXIT_CLEAN, EXIT_DISAGREEMENTS, EXIT_ERROR = 0, 1, 2
PROG = "python -m lead_load"


class _Parser(argparse.ArgumentParser):
    """Usage errors on one line, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="lead_load commands.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    verify = commands.add_parser(
        "verify",
        help="compare the ledger with the calling task's number list on the platform",
        description="Compare the ledger with the calling task's number list on the platform, "
        "report every disagreement (phones masked) and, with --repair, repair what the "
        "platform's list proves. Scope: --run-id, or --window-start and --window-end, or "
        "--api-task-id alone (every row of the calling task).",
    )
    verify.add_argument("--run-id", help="check the ledger rows of this DAG run")
    verify.add_argument("--window-start", help="with --window-end: check every run whose window")
    verify.add_argument("--window-end", help="overlaps [start, end) (ISO dates or times)")
    verify.add_argument(
        "--api-task-id",
        help="the calling task; required unless the run's calling task is in the ledger",
    )
    verify.add_argument("--sub-user-id", help="act on this sub-account of the platform")
    verify.add_argument(
        "--repair",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="repair what the platform's list proves (default: report only)",
    )
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.add_argument("--limit", type=int, default=50, help="lines to list per outcome")
    verify.add_argument(
        "--ledger-url", help="SQLAlchemy URL of the ledger (default: the Airflow connection)"
    )
    verify.add_argument(
        "--agent-api-conn-id", default="agent_api_default", help="the platform's connection"
    )
    _suppress_parser(commands)
    return parser


def _suppress_parser(commands: Any) -> None:
    """``suppress add | list | remove``: the suppression list (docs/suppression.md)."""
    suppress = commands.add_parser(
        "suppress",
        help="the suppression list: phones never to be called, in any calling task",
        description="Add phones to the suppression list, list it, or remove phones from it. "
        "Phones are normalised as leads' phones are; staging rejects a suppressed phone, and "
        "a batch's claim takes out rows whose phone was suppressed after staging.",
    )
    actions = suppress.add_subparsers(dest="action", required=True, parser_class=_Parser)
    add = actions.add_parser(
        "add",
        help="add phones from a CSV file or standard input",
        description="Add phones, all or nothing: a CSV with a header row (column phone, "
        "optional column reason) or one phone per line. Any bad line (named with its line "
        "number, phone masked) and nothing is added.",
    )
    add.add_argument("file", nargs="?", default="-", help="the file; - or none: standard input")
    add.add_argument("--reason", help="why, for the phones whose line gives no reason")
    add.add_argument("--added-by", help="who adds them (default: the operating system's user)")
    listing = actions.add_parser("list", help="list the suppressed phones (masked)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.add_argument(
        "--unmasked", action="store_true", help="show the phones in full (for the operator)"
    )
    remove = actions.add_parser(
        "remove",
        help="remove phones from the list",
        description="Remove the phones given (or those of --file, read as add reads), all or "
        "nothing when one is no mobile number.",
    )
    remove.add_argument("phones", nargs="*", help="the phones to remove")
    remove.add_argument("--file", help="a file of phones to remove, as add reads it")
    for action in (add, listing, remove):
        action.add_argument(
            "--ledger-url", help="SQLAlchemy URL of the ledger (default: the Airflow connection)"
        )


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command. Its results go to ``out``; by default to standard output, once file
    descriptor 1 is moved to standard error (see ``_results_stream``)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "suppress":
        if args.action == "remove" and not (args.phones or args.file):
            parser.error("suppress remove: give the phones to remove, or --file")
        return _run("suppress", _suppress, args, out)
    window = (args.window_start, args.window_end)
    if any(window) and not all(window):
        parser.error("--window-start and --window-end go together")
    if args.run_id and any(window):
        parser.error("give --run-id or a window, not both")
    if not (args.run_id or any(window) or args.api_task_id):
        parser.error("say what to check: --run-id, --window-start/--window-end or --api-task-id")
    return _run("verify", _verify, args, out)


def _run(command: str, run: Any, args: argparse.Namespace, out: TextIO | None) -> int:
    """Run a command; an error of the environment, the arguments or the platform ends it
    with one line on standard error and exit code 2."""
    try:
        return run(args, out or _results_stream())
    except Exception as error:
        if not _expected(error):
            raise
        print(f"{PROG} {command}: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_ERROR


def _verify(args: argparse.Namespace, out: TextIO) -> int:
    from lead_load.steps import landing_check

    engine = _ledger_engine(args.ledger_url)
    if args.run_id:
        scopes = [landing_check.run_scope(engine, args.run_id, args.api_task_id)]
    elif args.window_start:
        scopes = landing_check.window_scopes(
            engine, args.window_start, args.window_end, args.api_task_id
        )
    else:
        scopes = [landing_check.task_scope(args.api_task_id)]
    if not scopes:
        print("No run in lead_load_runs overlaps the window: nothing to check.", file=sys.stderr)
    report = landing_check.check(
        engine, _hook(args.agent_api_conn_id), scopes, args.sub_user_id, repair=args.repair
    )
    if args.json:
        print(
            json.dumps(
                {
                    "scope": report.scope,
                    "repair": args.repair,
                    "counts": report.counts(),
                    "findings": report.items()[: args.limit],
                },
                ensure_ascii=False,
            ),
            file=out,
            flush=True,
        )
    else:
        _print_text(report, args.limit, out)
    return EXIT_CLEAN if report.ok else EXIT_DISAGREEMENTS


def _print_text(report: Any, limit: int, out: TextIO) -> None:
    counts = report.counts()
    not_checked = (
        f", not checked {counts['not_checked']} (absent, imported outside the list read's bounds)"
        if counts["not_checked"]
        else ""
    )
    lines = [
        f"Landing check of {'; '.join(report.scope) or 'nothing'}",
        f"  checked {counts['checked']}, in the calling task {counts['in_task']}, "
        f"agree {counts['agree']}{not_checked}; repaired {_kinds(counts['repaired'])}; "
        f"left {_kinds(counts['unrepaired'])}",
        *(f"  repaired  {line}" for line in report.repaired_lines(limit)),
        *(f"  left      {line}" for line in report.unrepaired_lines(limit)),
    ]
    print("\n".join(lines), file=out, flush=True)


def _suppress(args: argparse.Namespace, out: TextIO) -> int:
    """``suppress add``, ``list`` or ``remove``."""
    actions = {"add": _suppress_add, "list": _suppress_list, "remove": _suppress_remove}
    return actions[args.action](args, out)


def _suppress_add(args: argparse.Namespace, out: TextIO) -> int:
    """Read every phone first; add them in one transaction only when every line is good."""
    from lead_load.ledger import suppressions

    given = _read_phones(args.file)
    if given is None:
        return EXIT_ERROR
    if not given.phones:
        print(f"{PROG} suppress add: error: no phone in the input", file=sys.stderr)
        return EXIT_ERROR
    entries = [suppressions.Entry(p.phone, p.reason or args.reason) for p in given.phones]
    added = suppressions.add(_suppression_ledger(args), entries, args.added_by or _user())
    print(
        f"Added {_n(added.added, 'phone')} to the suppression list; {added.already} "
        f"{_were(added.already)} on it already{_repeats(given.repeated)}.",
        file=out,
        flush=True,
    )
    return EXIT_CLEAN


def _suppress_list(args: argparse.Namespace, out: TextIO) -> int:
    """The list, phones masked unless --unmasked: it is a list of people's numbers, and a
    terminal's scrollback or a pasted answer should not carry them by default."""
    from lead_load.ledger import suppressions

    shown = [
        {
            "phone": entry.phone if args.unmasked else mask_phone(entry.phone),
            "reason": entry.reason,
            "added_at": entry.added_at.isoformat() if entry.added_at else None,
            "added_by": entry.added_by,
        }
        for entry in suppressions.listed(_suppression_ledger(args))
    ]
    if args.json:
        print(json.dumps(shown, ensure_ascii=False), file=out, flush=True)
        return EXIT_CLEAN
    lines = [f"{_n(len(shown), 'phone')} on the suppression list"]
    lines += [
        f"  {e['phone']:<13} {e['added_at'] or '-':<32} {e['added_by'] or '-':<16} "
        f"{e['reason'] or ''}".rstrip()
        for e in shown
    ]
    print("\n".join(lines), file=out, flush=True)
    return EXIT_CLEAN


def _suppress_remove(args: argparse.Namespace, out: TextIO) -> int:
    """Read every phone first; remove them in one transaction only when every one is good."""
    from lead_load.core.phone_lists import read_phone_list
    from lead_load.ledger import suppressions

    given = read_phone_list(args.phones, header=False)
    if given.bad:
        return _refuse("remove", [bad.describe("argument") for bad in given.bad], "removed")
    if args.file:
        from_file = _read_phones(args.file, "remove", "removed")
        if from_file is None:
            return EXIT_ERROR
        given.phones += from_file.phones
    phones = sorted({p.phone for p in given.phones})
    removed = suppressions.remove(_suppression_ledger(args), phones)
    missing = len(phones) - removed
    print(
        f"Removed {_n(removed, 'phone')} from the suppression list; {missing} "
        f"{_were(missing)} not on it.",
        file=out,
        flush=True,
    )
    return EXIT_CLEAN if not missing else EXIT_DISAGREEMENTS


def _read_phones(source: str, action: str = "add", done: str = "added") -> Any:
    """The phones of a file (``-``: standard input), or None when a line is bad: each bad
    line is said on standard error, phone masked, and nothing is applied."""
    from lead_load.core.phone_lists import read_phone_list

    if source == "-":
        given = read_phone_list(sys.stdin)
    else:
        with open(source, encoding="utf-8-sig", newline="") as lines:
            given = read_phone_list(lines)
    if given.bad:
        _refuse(action, [bad.describe() for bad in given.bad], done)
        return None
    return given


def _refuse(action: str, bad: list[str], done: str) -> int:
    """Say every bad line and that nothing changed: a list is never half-applied."""
    for line in bad:
        print(f"{PROG} suppress {action}: {line}", file=sys.stderr)
    print(
        f"{PROG} suppress {action}: error: {_n(len(bad), 'bad line')}; nothing {done} (a list "
        "is never half-applied): fix them and run again",
        file=sys.stderr,
    )
    return EXIT_ERROR


def _repeats(repeated: int) -> str:
    return f" ({_n(repeated, 'line')} repeated a phone given above)" if repeated else ""


def _n(count: int, noun: str) -> str:
    """``1 phone``, ``2 phones``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _were(count: int) -> str:
    return "was" if count == 1 else "were"


def _user() -> str | None:
    """Who runs the command, for ``added_by`` when --added-by is not given."""
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return None


def _suppression_ledger(args: argparse.Namespace) -> Any:
    """The ledger's engine, its tables created if this is the first use (as the load's
    extract step does)."""
    from lead_load.ledger import schema

    engine = _ledger_engine(args.ledger_url)
    schema.create_tables(engine)
    return engine


def _kinds(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in counts.items()) or "none"


def _ledger_engine(url: str | None) -> Any:
    if url:
        from sqlalchemy import create_engine

        return create_engine(url, hide_parameters=True)  # no phone in an error's text
    from lead_load.glue.connections import ledger_engine

    return ledger_engine()


def _hook(conn_id: str) -> Any:
    from agent_api.hooks.agent_api import AgentApiHook

    return AgentApiHook(conn_id)


def _expected(error: Exception) -> bool:
    """Errors of the environment, the arguments or the platform, not of this code."""
    from airflow.sdk.exceptions import AirflowException
    from sqlalchemy.exc import SQLAlchemyError

    from lead_load.steps.landing_check import ScopeError

    return isinstance(
        error,
        ScopeError | AirflowException | SQLAlchemyError | ImportError | OSError | UnicodeError,
    )


def _one_line(error: Exception) -> str:
    """The error's own message (the driver's, for a database error) on one line, masked."""
    message = str(getattr(error, "orig", None) or error)
    message = " ".join(message.split())
    return mask_phones_in(message or type(error).__name__)


def _results_stream() -> TextIO:
    """Standard output for the results alone: Airflow's logging writes to file descriptor 1,
    which would corrupt --json, so that descriptor now leads to standard error."""
    sys.stdout.flush()
    results = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    return results


if __name__ == "__main__":
    # Connections and Variables defined in the UI live in Airflow's metadata database, which
    # Airflow's SDK reads only in a "server" process (outside a task it otherwise knows just
    # environment variables and secrets backends). This command runs beside the scheduler.
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")
    sys.exit(main())
