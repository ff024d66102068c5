"""The `sgan label` web page and its JSON API, for one person on 127.0.0.1. Every client error is a 4xx with
`{"error": "..."}`.

- `GET /`: the page (deploy/label.html); `GET /api/state`: classes, labeled counts, the model, what is left;
- `GET /api/batch?size=N`: the N unlabeled images the model is least sure of, with its guess and confidence;
- `GET /api/image?file=F`: an unlabeled image's bytes;
- `POST /api/label {"file", "class"}`, `POST /api/skip {"file"}`, `POST /api/undo`;
- `POST /api/retrain`, `GET /api/retrain`: a warm-started flow run on the folder, and how it went.
"""

import dataclasses
import io
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException

from deploy.labeler import Labeler, LabelError, Retraining
from sgan import images

PAGE = Path(__file__).with_name("label.html")
MEDIA = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp", ".avif": "image/avif"}
SHOWN_SIDE = 512  # pixels: a HEIC photo, which browsers other than Safari cannot show, is sent as a JPEG this big


def create_app(labeler: Labeler, retraining: Retraining) -> FastAPI:
    app = FastAPI(title="sgan label", docs_url=None, redoc_url=None)

    @app.exception_handler(LabelError)
    async def label_error(request, e: LabelError):
        return JSONResponse({"error": str(e)}, status_code=e.status)

    @app.exception_handler(HTTPException)
    async def http_error(request, e: HTTPException):
        return JSONResponse({"error": str(e.detail)}, status_code=e.status_code)

    async def body(request: Request, *fields: str) -> dict:
        try:
            data = await request.json()
        except ValueError:
            raise LabelError(400, "the body must be JSON") from None
        if not isinstance(data, dict) or any(not isinstance(data.get(f), str) for f in fields):
            raise LabelError(400, f"the body must be a JSON object with {', '.join(fields)} as strings")
        return data

    @app.get("/", response_class=HTMLResponse)
    def page():
        return PAGE.read_text()

    @app.get("/api/state")
    def state():
        served = labeler.served
        return {"folder": str(labeler.folder), "classes": labeler.classes(), "counts": labeler.counts(),
                "model": {"version": served.version, "file": str(served.path)},
                "unlabeled_left": sum(1 for s in labeler.ranked if (labeler.unlabeled / s.file).is_file())}

    @app.get("/api/batch")
    def batch(size: int = 12):
        if not 1 <= size <= 200:
            raise LabelError(422, "size must be 1 to 200")
        return {"images": [dataclasses.asdict(s) for s in labeler.batch(size)]}

    @app.get("/api/image")
    def image(file: str):
        path = labeler.inside(file, labeler.unlabeled)
        if path.suffix.lower() in MEDIA:
            return FileResponse(path, media_type=MEDIA[path.suffix.lower()], headers={"Cache-Control": "no-store"})
        return Response(_as_jpeg(path), media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.post("/api/label")
    async def label(request: Request):
        data = await body(request, "file", "class")
        moved_to = labeler.label(data["file"], data["class"])
        return {"moved_to": moved_to, "counts": labeler.counts()}

    @app.post("/api/skip")
    async def skip(request: Request):
        labeler.skip((await body(request, "file"))["file"])
        return {"skipped": True}

    @app.post("/api/undo")
    def undo():
        return {"moved_back_to": labeler.undo(), "counts": labeler.counts()}

    @app.post("/api/retrain", status_code=202)
    def retrain():
        retraining.start()
        return retraining.status()

    @app.get("/api/retrain")
    def retrain_status():
        return retraining.status()

    return app


def _as_jpeg(path: Path) -> bytes:
    """A HEIC photo, upright, at most SHOWN_SIDE pixels a side, as JPEG bytes; 404 if it cannot be read."""
    from PIL import ImageOps

    try:
        with images.open_image(path, images.FILE_MAX_PIXELS) as image:
            shown = ImageOps.exif_transpose(image).convert("RGB")
    except Exception:  # noqa: BLE001 - an unreadable file is one the page cannot show
        raise LabelError(404, f"{path.name}: not a readable image") from None
    shown.thumbnail((SHOWN_SIDE, SHOWN_SIDE))
    buffer = io.BytesIO()
    shown.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()
