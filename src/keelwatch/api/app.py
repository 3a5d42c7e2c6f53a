"""The Starlette application: ingest routes, the REST API, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from keelwatch.alerting.dedup import RESTORED_ALERTS, Deduplicator
from keelwatch.alerting.hunt import hunt_report
from keelwatch.alerting.raiser import AlertRaiser, MatchSource
from keelwatch.alerting.runtime import runtime_alerts
from keelwatch.auth import Permission, TokenStore
from keelwatch.errors import (
    AuthError,
    ConfigError,
    KeelwatchError,
    QueryError,
    RequestError,
)
from keelwatch.ingest.metrics import Metrics
from keelwatch.ingest.service import IngestLimits, IngestService
from keelwatch.ingest.writer import BatchWriter, Overloaded
from keelwatch.model.fields import dumps
from keelwatch.model.severity import NAMES, severity_from_name
from keelwatch.parsers.registry import AUTO, parsers
from keelwatch.query.timerange import time_range
from keelwatch.sources.base import Intake, Listener, ListenerSettings
from keelwatch.sources.registry import configured_listeners, http_routes
from keelwatch.store.base import Store, Table

log = logging.getLogger(__name__)
MAX_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class ServerSettings:
    limits: IngestLimits = field(default_factory=IngestLimits)
    max_queue_events: int = 500_000
    retention_days: int | None = None
    auth_required: bool = True
    listeners: ListenerSettings = field(default_factory=ListenerSettings)
    alert_window_seconds: float = 600.0
    match_sources: tuple[MatchSource, ...] = ()  # rule engines; runtime alerts are always on


class KeelwatchJSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content)


def _error(status: int, message: str, **headers: str) -> Response:
    return KeelwatchJSON({"error": message}, status_code=status, headers=headers or None)


Handler = Callable[[Request], Awaitable[Response]]


class Api:
    def __init__(self, store: Store, tokens: TokenStore, settings: ServerSettings) -> None:
        self.store = store
        self.tokens = tokens
        self.settings = settings
        self.metrics = Metrics()
        self.dedup = Deduplicator(settings.alert_window_seconds)
        self.raiser = AlertRaiser([runtime_alerts, *settings.match_sources], self.dedup)
        self.writer = BatchWriter(
            store, max_queue_events=settings.max_queue_events, raiser=self.raiser
        )
        self.ingest = IngestService(self.writer, self.metrics, settings.limits)
        self.intake = Intake(
            self.ingest, tokens, auth_required=settings.auth_required, listeners=settings.listeners
        )
        # Built now, so a listener misconfiguration fails `serve` before it binds anything.
        self.listeners: list[Listener] = configured_listeners(self.intake)
        self._started: list[Listener] = []
        self.metrics.gauge("keelwatch_ingest_queue_events", lambda: self.writer.queued_events)

    def guard(self, permission: Permission, handler: Handler) -> Handler:
        """Wrap ``handler`` so it runs only for a bearer token that grants ``permission``."""

        async def guarded(request: Request) -> Response:
            if self.settings.auth_required:
                header = request.headers.get("authorization", "")
                scheme, _, secret = header.partition(" ")
                if scheme.lower() != "bearer" or not secret.strip():
                    return _error(
                        401,
                        "send Authorization: Bearer <token> "
                        "(create one with `keelwatch tokens create`)",
                        **{"WWW-Authenticate": "Bearer"},
                    )
                try:
                    record = self.tokens.authenticate(secret.strip())
                except AuthError:
                    return _error(401, "unknown token", **{"WWW-Authenticate": "Bearer"})
                if not TokenStore.allows(record, permission):
                    return _error(403, f"a {record.role} token cannot {permission}")
            try:
                return await handler(request)
            except (QueryError, ConfigError) as error:
                return _error(400, str(error))
            except RequestError as error:
                self.metrics.add(
                    "keelwatch_requests_rejected_total",
                    1,
                    protocol="http",
                    reason=type(error).__name__,
                )
                return _error(error.status, str(error))

        return guarded

    # -- routes ---------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        return KeelwatchJSON({"status": "ok"})

    async def metrics_text(self, request: Request) -> Response:
        return PlainTextResponse(self.metrics.render(), media_type="text/plain; version=0.0.4")

    async def ingest_route(self, request: Request) -> Response:
        source = request.path_params["source"]
        self.ingest.check_source(source)
        body = await self._read_body(request)
        try:
            result = await self.ingest.ingest(
                body, source, request.headers.get("content-encoding", "")
            )
        except Overloaded as error:
            self.metrics.add(
                "keelwatch_requests_rejected_total", 1, protocol="http", reason="overloaded"
            )
            return _error(
                503, f"{error}; retry later", **{"Retry-After": str(error.retry_after_seconds)}
            )
        return KeelwatchJSON(result.as_json())

    async def _read_body(self, request: Request) -> bytes:
        return await self.intake.read_body(request)

    def _read_args(self, request: Request) -> tuple[str, Any, int]:
        params = request.query_params
        window = time_range(params.get("since"), params.get("until"))
        raw_limit = params.get("limit", "100")
        if not raw_limit.isdigit():
            raise QueryError("limit must be a whole number")
        return params.get("q", ""), window, min(int(raw_limit), MAX_LIMIT)

    async def search(self, request: Request, table: Table) -> Response:
        query, window, limit = self._read_args(request)
        count_by = request.query_params.get("count_by")
        if count_by:
            buckets = await asyncio.to_thread(
                self.store.count_by, query, count_by, window, limit=limit, table=table
            )
            return KeelwatchJSON(
                {"field": count_by, "buckets": [{"value": v, "count": n} for v, n in buckets]}
            )
        result = await asyncio.to_thread(self.store.search, query, window, limit=limit, table=table)
        return KeelwatchJSON({"total": result.total, table: result.events})

    async def events(self, request: Request) -> Response:
        return await self.search(request, "events")

    async def findings(self, request: Request) -> Response:
        return await self.search(request, "findings")

    async def sql(self, request: Request) -> Response:
        body = await self._read_body(request)
        try:
            statement = orjson.loads(body)["query"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise QueryError('send {"query": "SELECT …"}') from None
        if not isinstance(statement, str):
            raise QueryError("query must be a string")
        result = await asyncio.to_thread(self.store.sql, statement)
        return KeelwatchJSON(
            {"columns": result.columns, "rows": result.rows, "truncated": result.truncated}
        )

    async def dead_letters(self, request: Request) -> Response:
        _, window, limit = self._read_args(request)
        rows = await asyncio.to_thread(self.store.dead_letters, window, limit=limit)
        return KeelwatchJSON({"dead_letters": rows})

    async def alerts(self, request: Request) -> Response:
        _, window, limit = self._read_args(request)
        params = request.query_params
        severity = params.get("severity")
        min_severity = None
        if severity:
            min_severity = severity_from_name(severity)
            if min_severity is None:
                raise QueryError(f"unknown severity {severity!r}; use {', '.join(NAMES)}")
        total, rows = await asyncio.to_thread(
            self.store.alerts, window, rule=params.get("rule"), min_severity=min_severity,
            limit=limit,
        )  # fmt: skip
        return KeelwatchJSON({"total": total, "alerts": rows})

    async def hunt(self, request: Request) -> Response:
        """Run the posted rules over stored events: {"rules": [{"name", "text"}], since, until}."""
        body = await self._read_body(request)
        try:
            posted = orjson.loads(body)
            texts = [(str(r["name"]), str(r["text"])) for r in posted["rules"]]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise QueryError('send {"rules": [{"name": "...", "text": "<Sigma YAML>"}]}') from None
        window = time_range(posted.get("since"), posted.get("until"))
        report = await asyncio.to_thread(
            hunt_report, self.store, texts, window,
            alert_window_seconds=self.settings.alert_window_seconds,
        )  # fmt: skip
        return KeelwatchJSON(report)

    async def sources(self, request: Request) -> Response:
        return KeelwatchJSON(
            {
                "sources": [
                    {"name": p.name, "dataset": p.dataset, "description": p.description}
                    for p in parsers().values()
                ]
                + [{"name": AUTO, "dataset": "", "description": "recognise each record"}]
            }
        )

    # -- lifecycle ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        parsers()  # load every parser now, so a broken one fails at start, not on a request
        # Reopen the latest alerts so a restart does not split them in two.
        self.dedup.restore(await asyncio.to_thread(self.store.latest_alerts, RESTORED_ALERTS))
        self.writer.start()
        retention = asyncio.create_task(self._retention_loop())
        try:
            for listener in self.listeners:
                await listener.start()
                self._started.append(listener)
            yield
        finally:
            for listener in reversed(self._started):
                await listener.stop()
            retention.cancel()
            await asyncio.to_thread(self.writer.stop)
            self.ingest.close()

    async def _retention_loop(self) -> None:
        days = self.settings.retention_days
        if not days:
            return
        while True:
            cutoff = datetime.now(UTC) - timedelta(days=days)
            try:
                deleted = await asyncio.to_thread(self.store.delete_older_than, cutoff)
                log.info("retention: deleted %s older than %s", deleted, cutoff.isoformat())
            except KeelwatchError:
                log.exception("retention pass failed")
            await asyncio.sleep(3600)


def create_app(store: Store, tokens: TokenStore, settings: ServerSettings) -> Starlette:
    api = Api(store, tokens, settings)
    routes: list[BaseRoute] = [
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/metrics", api.guard("read", api.metrics_text), methods=["GET"]),
        # /ingest/k8s-audit, the audit webhook target, is this route with source k8s-audit.
        Route("/ingest/{source}", api.guard("ingest", api.ingest_route), methods=["POST"]),
        Route("/api/v1/events", api.guard("read", api.events), methods=["GET"]),
        Route("/api/v1/findings", api.guard("read", api.findings), methods=["GET"]),
        Route("/api/v1/sql", api.guard("read", api.sql), methods=["POST"]),
        Route("/api/v1/dead-letters", api.guard("read", api.dead_letters), methods=["GET"]),
        Route("/api/v1/alerts", api.guard("read", api.alerts), methods=["GET"]),
        Route("/api/v1/hunt", api.guard("read", api.hunt), methods=["POST"]),
        Route("/api/v1/sources", api.guard("read", api.sources), methods=["GET"]),
    ]
    # Protocol routes last: Elasticsearch's handshake answers catch-all paths such as /{index}.
    routes.extend(http_routes(api.intake))
    app = Starlette(routes=routes, lifespan=api.lifespan)
    app.state.api = api
    return app
