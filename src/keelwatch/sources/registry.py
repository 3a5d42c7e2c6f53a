"""The protocol adapters `keelwatch serve` runs, by module name under keelwatch.sources."""

from __future__ import annotations

import importlib

from starlette.routing import BaseRoute

from keelwatch.sources.base import Intake, Listener

# Modules that define ``routes(intake) -> list[BaseRoute]`` (served on the HTTP port).
HTTP_MODULES: tuple[str, ...] = ("otlp_http", "loki_push", "splunk_hec", "elasticsearch_bulk")
# Modules that define ``listeners(intake) -> list[Listener]`` (only the ones configured).
LISTENER_MODULES: tuple[str, ...] = ("lumberjack", "fluent_forward", "syslog")


def http_routes(intake: Intake) -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for name in HTTP_MODULES:
        module = importlib.import_module(f"keelwatch.sources.{name}")
        routes.extend(module.routes(intake))
    return routes


def configured_listeners(intake: Intake) -> list[Listener]:
    found: list[Listener] = []
    for name in LISTENER_MODULES:
        module = importlib.import_module(f"keelwatch.sources.{name}")
        found.extend(module.listeners(intake))
    return found
