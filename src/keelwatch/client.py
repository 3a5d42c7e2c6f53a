"""A small client for a running Keelwatch server's REST API (used by the CLI)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from keelwatch.errors import AuthError, KeelwatchError, QueryError


class ServerClient:
    def __init__(self, url: str, token: str | None, *, timeout_seconds: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout_seconds
        )

    def _check(self, response: httpx.Response) -> Any:
        if response.status_code in (401, 403):
            raise AuthError(f"{response.json().get('error')} (pass --token or set KEELWATCH_TOKEN)")
        if response.status_code == 400:
            raise QueryError(response.json().get("error", response.text))
        if response.status_code >= 300:
            raise KeelwatchError(f"server answered {response.status_code}: {response.text[:500]}")
        return orjson.loads(response.content)

    def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        try:
            return self._check(self._http.get(path, params=clean))
        except httpx.TransportError as error:
            raise KeelwatchError(f"cannot reach {self._http.base_url}: {error}") from None

    def post(self, path: str, content: bytes, headers: dict[str, str] | None = None) -> Any:
        try:
            return self._check(self._http.post(path, content=content, headers=headers))
        except httpx.TransportError as error:
            raise KeelwatchError(f"cannot reach {self._http.base_url}: {error}") from None

    def close(self) -> None:
        self._http.close()
