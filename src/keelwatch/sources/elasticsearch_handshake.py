"""What Elasticsearch clients ask before their first ``_bulk``: info, health, templates, ILM.

Collectors check the server before they send: the official clients want the
``X-Elastic-Product: Elasticsearch`` header on every answer; Vector reads ``version.number`` from
``GET /`` to pick its API version; Filebeat compares that version with its own (it refuses an
older server unless ``allow_older_versions`` is set), asks ``/_license`` and ``/_xpack`` and then
installs index templates and ILM policies. Keelwatch has no mappings, so every template, policy,
alias, data stream and index "exists", and creating one is acknowledged without being stored.

Every endpoint needs an ingest token, as a secured Elasticsearch cluster would (clients send their
credentials with the handshake too), and is checked before any body is read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from keelwatch.errors import PayloadTooLarge, RequestError
from keelwatch.sources.base import Intake, credential

PROTOCOL = "elasticsearch"
# The version clients see. Major 9 keeps Filebeat 8.x/9.x from refusing an "older" server,
# matches the `compatible-with=9` the 9.x clients send and is >= 7, so Vector drops `_type`.
VERSION = "9.1.0"
LUCENE_VERSION = "10.2.2"
CLUSTER_NAME = "keelwatch"
CLUSTER_UUID = "a2VlbHdhdGNoLWNsdXN0ZXI"
NODE_ID = "a2VlbHdhdGNoLW5vZGU"
PRODUCT_HEADER = {"X-Elastic-Product": "Elasticsearch"}
MAX_COMPATIBLE_DIGITS = 2

Handler = Callable[[Request], Awaitable[Response]]


# -- answers in Elasticsearch's format ---------------------------------------------------------


def media_type(request: Request) -> str:
    """JSON, or the compatible-with media type a client asked for (the 8.x/9.x clients do)."""
    for header in ("accept", "content-type"):
        for part in request.headers.get(header, "").replace(",", ";").split(";"):
            key, _, value = part.strip().partition("=")
            value = value.strip().strip('"')
            compatible = value.isascii() and value.isdigit()
            if key.lower() == "compatible-with" and compatible and len(value) <= 2:
                return f"application/vnd.elasticsearch+json;compatible-with={int(value)}"
    return "application/json"


def es_json(
    request: Request,
    content: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    body = b"" if request.method == "HEAD" else orjson.dumps(content)
    return Response(
        body,
        status_code=status,
        media_type=media_type(request),
        headers={**PRODUCT_HEADER, **(headers or {})},
    )


def es_error(
    request: Request,
    status: int,
    error_type: str,
    reason: str,
    headers: dict[str, str] | None = None,
) -> Response:
    """A whole-request error as Elasticsearch words it: ``{"error": {...}, "status": n}``."""
    cause = {"type": error_type, "reason": reason}
    return es_json(
        request, {"error": {"root_cause": [cause], **cause}, "status": status}, status, headers
    )


def request_error(request: Request, error: RequestError) -> Response:
    if isinstance(error, PayloadTooLarge):
        return es_error(request, error.status, "content_too_long_exception", str(error))
    return es_error(request, error.status, "illegal_argument_exception", str(error))


def guarded(intake: Intake, handler: Handler) -> Handler:
    """Check the ingest token before anything else; map refusals to Elasticsearch errors."""

    async def endpoint(request: Request) -> Response:
        secret = credential(request.headers.get("authorization", ""))
        if not intake.authorized(secret):
            intake.reject(PROTOCOL, "unauthorized")
            reason = "missing or unknown credentials: send an ingest token as the Basic "
            reason += "password, an ApiKey or a Bearer token"
            return es_error(
                request,
                401,
                "security_exception",
                reason,
                {"WWW-Authenticate": 'Basic realm="keelwatch"'},
            )
        try:
            return await handler(request)
        except RequestError as error:
            intake.reject(PROTOCOL, type(error).__name__)
            return request_error(request, error)

    return endpoint


# -- the handshake documents -------------------------------------------------------------------


def info_document() -> dict[str, Any]:
    return {
        "name": "keelwatch",
        "cluster_name": CLUSTER_NAME,
        "cluster_uuid": CLUSTER_UUID,
        "version": {
            "number": VERSION,
            "build_flavor": "default",
            "build_type": "keelwatch",
            "build_hash": "keelwatch",
            "build_date": "2025-07-01T00:00:00.000Z",
            "build_snapshot": False,
            "lucene_version": LUCENE_VERSION,
            "minimum_wire_compatibility_version": "8.19.0",
            "minimum_index_compatibility_version": "8.0.0",
        },
        "tagline": "You Know, for Search",
    }


def _license() -> dict[str, Any]:
    return {
        "status": "active",
        "uid": CLUSTER_UUID,
        "type": "basic",
        "mode": "basic",
        "issue_date_in_millis": 0,
        "issued_to": CLUSTER_NAME,
        "issuer": "keelwatch",
        "max_nodes": 1000,
        "start_date_in_millis": -1,
    }


async def info(request: Request) -> Response:
    return es_json(request, info_document())


async def cluster_health(request: Request) -> Response:
    return es_json(
        request,
        {
            "cluster_name": CLUSTER_NAME,
            "status": "green",
            "timed_out": False,
            "number_of_nodes": 1,
            "number_of_data_nodes": 1,
            "active_primary_shards": 0,
            "active_shards": 0,
            "relocating_shards": 0,
            "initializing_shards": 0,
            "unassigned_shards": 0,
            "delayed_unassigned_shards": 0,
            "number_of_pending_tasks": 0,
            "number_of_in_flight_fetch": 0,
            "task_max_waiting_in_queue_millis": 0,
            "active_shards_percent_as_number": 100.0,
        },
    )


async def cluster_state_version(request: Request) -> Response:
    # Vector before 0.27 took this counter for the API version; the major keeps it on v8+.
    return es_json(
        request,
        {"cluster_name": CLUSTER_NAME, "cluster_uuid": CLUSTER_UUID, "version": 9},
    )


def nodes_http(max_body_bytes: int) -> Handler:
    async def handler(request: Request) -> Response:
        # Sniffing clients connect to the publish address: give back the one they used.
        address = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
        node = {
            "name": "keelwatch",
            "host": request.url.hostname,
            "version": VERSION,
            "roles": ["data", "ingest", "master"],
            "http": {
                "bound_address": [address],
                "publish_address": address,
                "max_content_length_in_bytes": max_body_bytes,
            },
        }
        return es_json(
            request,
            {
                "_nodes": {"total": 1, "successful": 1, "failed": 0},
                "cluster_name": CLUSTER_NAME,
                "nodes": {NODE_ID: node},
            },
        )

    return handler


async def license_info(request: Request) -> Response:
    return es_json(request, {"license": _license()})


async def xpack(request: Request) -> Response:
    available = {"available": True, "enabled": True}
    return es_json(
        request,
        {
            "build": {"hash": "keelwatch", "date": "2025-07-01T00:00:00.000Z"},
            "license": {key: _license()[key] for key in ("uid", "type", "mode", "status")},
            "features": {
                "ilm": available,
                "security": available,
                "monitoring": {"available": True, "enabled": False},
            },
            "tagline": "You know, for X",
        },
    )


async def acknowledged(request: Request) -> Response:
    """Creating or deleting a template, policy, alias or data stream: nothing to keep."""
    return es_json(request, {"acknowledged": True})


async def index_created(request: Request) -> Response:
    name = request.path_params.get("index", "")
    return es_json(request, {"acknowledged": True, "shards_acknowledged": True, "index": name})


async def exists(request: Request) -> Response:
    return es_json(request, {})


def _name(request: Request) -> str:
    return str(request.path_params.get("name", ""))


async def index_template(request: Request) -> Response:
    name = _name(request)
    template = {"index_patterns": [f"{name}*"], "composed_of": [], "template": {}}
    return es_json(request, {"index_templates": [{"name": name, "index_template": template}]})


async def legacy_template(request: Request) -> Response:
    name = _name(request)
    template = {"order": 0, "index_patterns": [f"{name}*"], "settings": {}, "mappings": {}}
    return es_json(request, {name: {**template, "aliases": {}}})


async def component_template(request: Request) -> Response:
    name = _name(request)
    return es_json(
        request,
        {"component_templates": [{"name": name, "component_template": {"template": {}}}]},
    )


async def ilm_policy(request: Request) -> Response:
    name = _name(request)
    if not name:
        return es_json(request, {})
    modified = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    policy = {"phases": {"hot": {"min_age": "0ms", "actions": {}}}}
    return es_json(request, {name: {"version": 1, "modified_date": modified, "policy": policy}})


async def alias(request: Request) -> Response:
    name = _name(request)
    index = str(request.path_params.get("index", name))
    return es_json(request, {index: {"aliases": {name: {"is_write_index": True}}}})


async def data_stream(request: Request) -> Response:
    name = _name(request)
    streams = []
    if name:
        streams.append(
            {
                "name": name,
                "timestamp_field": {"name": "@timestamp"},
                "indices": [],
                "generation": 1,
                "status": "GREEN",
                "template": name,
                "hidden": False,
                "system": False,
            }
        )
    return es_json(request, {"data_streams": streams})


def handshake_routes(intake: Intake) -> list[BaseRoute]:
    """Routes with fixed first segments; ``index_routes`` (the catch-all) must go last."""
    read = ["GET", "HEAD"]
    write = ["PUT", "POST", "DELETE"]

    def route(path: str, handler: Handler, methods: list[str]) -> Route:
        return Route(path, guarded(intake, handler), methods=methods)

    found: list[BaseRoute] = [
        route("/", info, read),
        route("/_cluster/health", cluster_health, read),
        route("/_cluster/health/{index}", cluster_health, read),
        route("/_cluster/state/version", cluster_state_version, read),
        route("/_license", license_info, read),
        route("/_xpack", xpack, read),
        route("/_ilm/policy", ilm_policy, read),
        route("/_ilm/policy/{name}", ilm_policy, read),
        route("/_ilm/policy/{name}", acknowledged, write),
        route("/_aliases", acknowledged, ["POST"]),
        route("/_alias/{name}", alias, read),
        route("/_data_stream", data_stream, read),
        route("/_data_stream/{name}", data_stream, read),
        route("/_data_stream/{name}", acknowledged, write),
    ]
    nodes = nodes_http(intake.limits.max_body_bytes)
    for path in ("/_nodes", "/_nodes/http", "/_nodes/{node}/http"):
        found.append(route(path, nodes, read))
    for kind, handler in (
        ("_index_template", index_template),
        ("_template", legacy_template),
        ("_component_template", component_template),
    ):
        found.append(route(f"/{kind}/{{name}}", handler, read))
        found.append(route(f"/{kind}/{{name}}", acknowledged, write))
    return found


def index_routes(intake: Intake) -> list[BaseRoute]:
    """``/{index}`` checks and creation: last, as they match any single path segment.

    GET is left out so a catch-all never hides another adapter's one-segment GET route.
    """
    return [
        Route("/{index}/_alias/{name}", guarded(intake, alias), methods=["GET", "HEAD"]),
        Route("/{index}/_alias/{name}", guarded(intake, acknowledged), methods=["PUT", "POST"]),
        Route("/{index}", guarded(intake, exists), methods=["HEAD"]),
        Route("/{index}", guarded(intake, index_created), methods=["PUT"]),
    ]
