"""Command line: `python -m agent_api_simulator --host 127.0.0.1 --port 18080 --token T`.

Prints one "listening on" line once the socket is bound (with the real port, so --port 0
works) and stops cleanly on SIGTERM or SIGINT.
"""

import argparse
import asyncio
import json
import logging
import signal
import sys

from aiohttp import web

from agent_api_simulator import assumptions as assumed
from agent_api_simulator.app import build_app
from agent_api_simulator.faults import FaultConfig, FaultConfigError
from agent_api_simulator.simulator import SimulatorSettings

# Lost-answer requests may still be sleeping at shutdown; do not wait for them long.
SHUTDOWN_TIMEOUT_S = 1.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m agent_api_simulator",
        description="Simulator of the call-center agent-api (see docs/simulator.md).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080, help="0 picks a free port")
    parser.add_argument("--token", required=True, help="the bearer token clients must send")
    parser.add_argument("--user-id", help="create this user at start")
    parser.add_argument("--task-id", help="create this stopped 2.0 task at start (needs --user-id)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault randomness")
    parser.add_argument(
        "--process-delay",
        type=float,
        default=assumed.DEFAULT_PROCESS_DELAY_S,
        help="seconds between accepting a batch and importing it",
    )
    parser.add_argument("--faults", help='initial fault config as JSON, e.g. {"error_rate": 0.1}')
    args = parser.parse_args(argv)
    if args.task_id and not args.user_id:
        parser.error("--task-id needs --user-id")
    if args.faults:
        try:
            args.faults = json.loads(args.faults)
            FaultConfig.from_json(args.faults, args.seed)
        except (ValueError, FaultConfigError) as error:
            parser.error(f"--faults: {error}")
    return args


async def serve(args: argparse.Namespace) -> None:
    settings = SimulatorSettings(
        token=args.token,
        process_delay=args.process_delay,
        seed=args.seed,
        faults=args.faults,
        user_id=args.user_id,
        task_id=args.task_id,
    )
    runner = web.AppRunner(
        build_app(settings), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    await runner.setup()
    # Signal handlers first: whoever saw the "listening" line may terminate us right away.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        port = runner.addresses[0][1]
        print(f"agent-api simulator listening on http://{args.host}:{port}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Warnings and handler crashes (with tracebacks) go to stderr; there is no access log.
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
