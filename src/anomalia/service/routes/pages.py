"""``GET /`` (the page in ``templates/index.html``) and the static mounts under ``/static``."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from anomalia.service.settings import Settings

SERVICE_DIR = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = SERVICE_DIR / "templates"
UI_ASSETS_DIR = SERVICE_DIR / "static"
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                           "frame-ancestors 'none'")
"""The page runs only its own files: no inline script or handler, no framing; the heatmap is a ``data:``
URL and the preview a ``blob:``. (``nosniff`` and frame protection are on every answer: ``middleware``.)"""

router = APIRouter()


def templates_dir() -> Path:
    """Where ``index.html`` lives; a dependency so tests can point it elsewhere."""
    return TEMPLATES_DIR


@router.get("/", include_in_schema=False)
async def index(folder: Path = Depends(templates_dir)):
    page = folder / "index.html"
    if not page.is_file():
        return JSONResponse({"detail": "templates/index.html no encontrado"}, status_code=404)
    return FileResponse(page, media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"})


def mount_static(app: FastAPI, settings: Settings) -> None:
    """The page's own assets at ``/static/ui`` first (so ``/static`` cannot shadow them), then ``STATIC_DIR``."""
    app.mount("/static/ui", StaticFiles(directory=UI_ASSETS_DIR, check_dir=False), name="ui")
    app.mount("/static", StaticFiles(directory=settings.static_dir, check_dir=False), name="static")
