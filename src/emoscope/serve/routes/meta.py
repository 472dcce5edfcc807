"""The page, its icon, liveness and what the served model is: /, /favicon.ico, /health, /v1/model."""

from __future__ import annotations

from dataclasses import asdict
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ...labels import VALENCE

router = APIRouter()
STATIC = resources.files("emoscope") / "serve" / "static"


@router.get("/", response_class=HTMLResponse)
def index() -> str:
    return (STATIC / "index.html").read_text(encoding="utf-8")


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    return Response((STATIC / "favicon.svg").read_bytes(), media_type="image/svg+xml",
                    headers={"Cache-Control": "max-age=86400"})


@router.get("/presentation.js", include_in_schema=False)
def presentation_js() -> Response:
    """The colours and marks every report, chart and annotated video uses (`emoscope.presentation`)."""
    from ...presentation import javascript
    return Response(javascript(), media_type="text/javascript", headers={"Cache-Control": "max-age=3600"})


@router.get("/health")
async def health(request: Request) -> dict:
    """Answers from state on the event loop: never waits for an analyzer or a thread."""
    state = request.app.state
    return {"status": "ok", "video_jobs_pending": state.jobs.pending(), "requests_inside": state.admission.inside,
            "analyzers_idle": state.analyzers.idle()}


@router.get("/v1/model")
def model_info(request: Request) -> dict:
    analyzer = request.app.state.analyzers.first
    meta = analyzer.classifier.meta
    return {"classes": analyzer.classes, "input_size": list(meta.input_size), "color": meta.color,
            "crop": asdict(meta.crop), "temperature": meta.temperature, "class_bias": meta.class_bias,
            "face_mesh": analyzer.landmarker is not None,
            "expression_from_blendshapes": ({"weight": analyzer.expert.weight, "fitted": analyzer.expert.fitted,
                                             "valence_thresholds": analyzer.fused_valence_rule.to_dict()}
                                            if analyzer.expert else None),
            "architecture": meta.extra.get("architecture"), "metrics": meta.extra.get("metrics", {}),
            "card": "docs/model-card.md",
            "valence": {"weights": VALENCE, "thresholds": analyzer.valence_rule.to_dict()}}
