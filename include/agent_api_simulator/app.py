"""Assemble the aiohttp application around one Simulator."""

import asyncio
import contextlib

from aiohttp import web

from agent_api_simulator import admin_routes, platform_routes
from agent_api_simulator.app_keys import SIMULATOR
from agent_api_simulator.platform_gate import platform_gate
from agent_api_simulator.simulator import Simulator, SimulatorSettings

PROCESSOR_TASK = web.AppKey("processor_task", asyncio.Task)


def build_app(settings: SimulatorSettings) -> web.Application:
    app = web.Application(middlewares=[platform_gate])
    app[SIMULATOR] = Simulator(settings)
    app.add_routes(platform_routes.routes)
    app.add_routes(admin_routes.routes)
    app.on_startup.append(start_processor)
    app.on_cleanup.append(stop_processor)
    return app


async def start_processor(app: web.Application) -> None:
    app[PROCESSOR_TASK] = asyncio.create_task(app[SIMULATOR].processor.run())


async def stop_processor(app: web.Application) -> None:
    task = app[PROCESSOR_TASK]
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
