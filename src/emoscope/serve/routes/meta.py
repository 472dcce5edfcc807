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


@router.get("/model", response_class=HTMLResponse, include_in_schema=False)
def model_page(request: Request) -> str:
    """What /v1/model says, as a page a person reads: what the model reads and how, its valence
    rule, and its measured accuracy (shares as percentages)."""
    import html

    import pandas as pd

    from ...presentation import expression_color, share, share_with_interval
    from ...report import html_page, table
    info = model_info(request)
    swatch = "".join(f"<span style='display:inline-block;margin:2px 8px 2px 0'><span style='display:inline-block;"
                     f"width:12px;height:12px;background:{expression_color(c)};margin-right:4px'></span>"
                     f"{html.escape(c)}</span>" for c in info["classes"])
    size = "×".join(map(str, info["input_size"]))
    expert = info["expression_from_blendshapes"]
    about = pd.DataFrame({"": ["expressions", "network", "input", "temperature", "face mesh",
                               "expression from the blendshapes too"],
                          " ": [swatch, html.escape(str(info["architecture"] or "not stated")),
                                f"{size} px face crop, {html.escape(info['color'])}", f"{info['temperature']:.3f}",
                                "on" if info["face_mesh"] else "off (start the server with --mesh)",
                                f"yes (weight {expert['weight']:.2f})" if expert else "no"]})
    rule = info["valence"]["thresholds"]
    weights = info["valence"]["weights"]
    valence = pd.DataFrame({"expression": info["classes"],
                            "valence weight": [f"{weights.get(c, 0.0):+.2f}" for c in info["classes"]]})
    rows = [{"measured on": html.escape(name.replace("_", " ")), "n": f"{m['n']:,}" if "n" in m else "–",
             "accuracy": share(m.get("accuracy")), "balanced accuracy": share(m.get("balanced_accuracy")),
             "macro-F1": share_with_interval(m.get("macro_f1"), m.get("intervals", {}).get("macro_f1")),
             "date": html.escape(str(m.get("date", "–"))),
             **{f"recall {c}": share(m.get("recall", {}).get(c)) for c in info["classes"]}}
            for name, m in info["metrics"].items() if isinstance(m, dict)]
    grouped = [f"{html.escape(name.replace('_', ' '))}: {html.escape(m['intervals_resampled'])}"
               for name, m in info["metrics"].items() if isinstance(m, dict)
               and m.get("intervals_resampled", "the photos") != "the photos"]
    brackets = ("<p>In brackets: the 95% bootstrap interval of macro-F1 (1,000 resamples of the faces; how far it "
                "could move on another sample of the same size)" +
                (f". Where photos show the same people, whole people were drawn: {'; '.join(grouped)}." if grouped
                 else ".") + "</p>")
    measured = (table(pd.DataFrame(rows), escape=False) + brackets if rows
                else "<p>The model states no measurements.</p>")
    return html_page("The served model", [
        ("What it reads", table(about, escape=False)),
        ("Valence", f"<p>A face's valence score is the mean of these weights under its probabilities (-1 to +1); "
                    f"it reads positive above +{rule['positive']:.2f}, negative below -{rule['negative']:.2f}, "
                    f"neutral between.</p>" + table(valence)),
        ("Measured accuracy", measured),
        ("More", "<p>The same as JSON: <a href='/v1/model'>/v1/model</a>. How the model was trained and where it "
                 "fails: <code>docs/model-card.md</code> in the repository. <a href='/'>Back to the page</a>.</p>")])


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
