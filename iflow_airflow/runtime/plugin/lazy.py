"""An ASGI app that imports and builds the iflow page's FastAPI app on its first request.

The plugin module is imported by every Airflow component (workers included); only
the api-server serves the page, so FastAPI and the page code load there, when
first needed.
"""

from __future__ import annotations

from typing import Any


class LazyApp:
    def __init__(self, factory: str = "iflow_airflow.runtime.plugin.web:create_app") -> None:
        self.factory = factory
        self._app: Any = None

    @property
    def app(self) -> Any:
        if self._app is None:
            import importlib

            module, _, attr = self.factory.partition(":")
            self._app = getattr(importlib.import_module(module), attr)()
        return self._app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # a mounted app gets no lifespan events; answer if asked
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await self.app(scope, receive, send)
