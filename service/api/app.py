"""The FastAPI application: `create_app(settings)` wires the store and the routers.

Run it with `uvicorn --factory service.api.app:create_app`.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from service.api.index import router as index_router
from service.config import Settings, load_settings
from service.errors import WheelwrightError
from service.index import IndexCatalog
from service.store import WheelStore, open_store


def create_app(
    settings: Settings | None = None,
    *,
    store: WheelStore | None = None,
    index_ttl_s: float = 10.0,
) -> FastAPI:
    """The API over `settings` (read from the environment when None) and its store."""
    settings = settings or load_settings()
    store = store if store is not None else open_store(settings)
    app = FastAPI(title="Wheelwright", version="0.1.0")
    app.state.settings = settings
    app.state.store = store
    app.state.index_catalog = IndexCatalog(store, ttl_s=index_ttl_s)

    @app.exception_handler(WheelwrightError)
    async def wheelwright_error(_request: Request, exc: Exception) -> JSONResponse:
        status = exc.http_status if isinstance(exc, WheelwrightError) else 500
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(index_router)
    return app
