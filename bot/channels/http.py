"""python-telegram-bot's requests through aiohttp (already the bot's HTTP server and Zalo's
client) instead of httpx: under load, httpx's per-request work was the largest share of the
bot's CPU (py-spy, benchmarks/deadline_rush.py). 1,000 sendMessage to the stand-in, ten at a
time, took 3.6-4.3 s of CPU through httpx and 0.9-1.2 s through this (stand-in included).

PTB lets the transport be replaced (`telegram.request.BaseRequest`); this does what its
HTTPXRequest does: parameters form-encoded (JSON values), files as multipart, timeouts and
transport errors raised as TimedOut and NetworkError, status and body handed back to PTB."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

# PTB's HTTPXRequest defaults
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 5.0
POOL_TIMEOUT = 1.0
MEDIA_TIMEOUT = 20.0  # sending a file: the upload as well as the answer
_JSON = {"Content-Type": "application/json"}


def _given(value: Any, default: float | None) -> float | None:
    return default if isinstance(value, DefaultValue) else value


class AiohttpRequest(BaseRequest):
    def __init__(self, connections: int = 256) -> None:
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return READ_TIMEOUT

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections),
                headers={"User-Agent": self.USER_AGENT},
            )

    async def shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("AiohttpRequest is not initialized")
        body: aiohttp.FormData | bytes | None = None
        headers: dict[str, str] | None = None
        files = request_data.multipart_data if request_data is not None else {}
        read = _given(read_timeout, READ_TIMEOUT)
        if request_data is not None and files:
            form = aiohttp.FormData()
            for name, value in request_data.json_parameters.items():
                form.add_field(name, value)
            for name, (file_name, content, mime) in files.items():
                form.add_field(name, content, filename=file_name, content_type=mime)
            body = form
            write = _given(write_timeout, MEDIA_TIMEOUT)
            read = None if read is None or write is None else read + write
        elif request_data is not None:
            # one JSON document (the Bot API takes application/json): cheaper than PTB's
            # per-value JSON then form-encoding
            body = json.dumps(request_data.parameters, separators=(",", ":")).encode()
            headers = _JSON
        connect = _given(connect_timeout, CONNECT_TIMEOUT)
        pool = _given(pool_timeout, POOL_TIMEOUT)
        timeout = aiohttp.ClientTimeout(
            # aiohttp's `connect` includes the wait for a pooled connection
            connect=None if connect is None or pool is None else connect + pool,
            sock_connect=connect,
            sock_read=read,
        )
        try:
            async with self._session.request(
                method, url, data=body, headers=headers, timeout=timeout
            ) as answer:
                return answer.status, await answer.read()
        except TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc
