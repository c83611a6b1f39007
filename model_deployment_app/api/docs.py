"""The OpenAPI pages (`/docs`, `/redoc`) with Swagger UI's and ReDoc's files served from the
package (the fastapi-offline wheel ships them): they work without internet, under the root
path, and reference no other host (scripts, styles, favicon)."""

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS = "/docs-assets"


def _assets_folder() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def install_docs(app: FastAPI) -> None:
    """Serve `/docs` and `/redoc` (the app is built with both of FastAPI's own turned off)."""
    app.mount(ASSETS, StaticFiles(directory=_assets_folder()), name="docs-assets")
    schema = app.openapi_url or "/openapi.json"

    def under_root(request: Request) -> tuple[str, str]:
        """The schema's URL and the assets' folder, under the prefix the page was asked at."""
        root = request.scope.get("root_path", "")
        return root + schema, root + ASSETS

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        openapi_url, assets = under_root(request)
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css", swagger_favicon_url=f"{assets}/favicon.png",
        )  # fmt: skip

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        openapi_url, assets = under_root(request)
        return get_redoc_html(
            openapi_url=openapi_url, title=f"{app.title} - ReDoc",
            redoc_js_url=f"{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/favicon.png", with_google_fonts=False,
        )  # fmt: skip
