"""``python -m lead_load verify``: the landing check from a shell.

    python -m lead_load verify --run-id RUN_ID [--repair] [--json]
    python -m lead_load verify --window-start 2026-11-24 --window-end 2026-11-25
    python -m lead_load verify --api-task-id API_TASK_ID

It reads the ledger and the platform through the same Airflow connections as the DAG
(``lead_warehouse`` or the connection the Variable ``lead_load_ledger_conn_id`` names, and
``agent_api_default``), so run it where Airflow's tasks run; ``--ledger-url`` points at a
ledger database directly. Exit code: 0 nothing left to repair, 1 disagreements left,
2 the check could not run (the reason on one line), nothing changed: among those reasons, a
number list that could not be read whole, or whose read misses too many imported rows to be
trusted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, NoReturn, TextIO

from agent_api.masking import mask_phones_in

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
    return parser


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command. Its results go to ``out``; by default to standard output, once file
    descriptor 1 is moved to standard error (see ``_results_stream``)."""
    parser = _parser()
    args = parser.parse_args(argv)
    window = (args.window_start, args.window_end)
    if any(window) and not all(window):
        parser.error("--window-start and --window-end go together")
    if args.run_id and any(window):
        parser.error("give --run-id or a window, not both")
    if not (args.run_id or any(window) or args.api_task_id):
        parser.error("say what to check: --run-id, --window-start/--window-end or --api-task-id")
    try:
        return _verify(args, out or _results_stream())
    except Exception as error:
        if not _expected(error):
            raise
        print(f"{PROG} verify: error: {_one_line(error)}", file=sys.stderr)
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
        error, ScopeError | AirflowException | SQLAlchemyError | ImportError | OSError
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
