"""Typed keys for what the aiohttp application carries."""

from aiohttp import web

from agent_api_simulator.simulator import Simulator

SIMULATOR = web.AppKey("simulator", Simulator)
