"""Studies in a real browser (Debian's Chromium with a fake camera showing a sample photo): three
viewers go through consent, the camera check and the ad; a fourth, whose camera shows no face, is
excluded with the reason; the report says n = 3; the server is killed (kill -9) and started again
and the study, its viewers and its report are all still there. With EMOSCOPE_TEST_POSTGRES, the
same against PostgreSQL, with two servers on two ports sharing the database and one study."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request

import cv2
import numpy as np
import pytest

from test_browser import CHROMIUM, launch

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's package)")]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POSTGRES = os.environ.get("EMOSCOPE_TEST_POSTGRES")


@contextlib.contextmanager
def server(db: str, log: str):
    """`emoscope serve --db DB` on a free port; yields (url, process); killed with SIGKILL after."""
    from conftest import free_port, shared_path, wait_healthy
    port = free_port()
    with open(log, "a") as out:
        proc = subprocess.Popen([sys.executable, "-m", "emoscope.cli", "serve", "--port", str(port), "--db", db,
                                 "--detector-model", shared_path("models", "face_detection_yunet.onnx")],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url)
    try:
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)


def api(url: str, path: str, data: bytes | None = None, method: str = "GET") -> dict:
    req = urllib.request.Request(url + path, data=data, method=method)
    with urllib.request.urlopen(req, timeout=120) as r:
        body = r.read()
    return json.loads(body) if r.headers.get("content-type", "").startswith("application/json") else body.decode()


def still_y4m(dst: str, picture: np.ndarray | None = None, frames: int = 50, size=(640, 480)) -> str:
    """A webcam that shows one picture (a viewer facing a laptop: one large face), or grey (nobody)."""
    if picture is None:
        frame = np.full((size[1], size[0], 3), 110, np.uint8)
    else:
        scale = min(size[0] / picture.shape[1], size[1] / picture.shape[0])
        small = cv2.resize(picture, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        frame = np.full((size[1], size[0], 3), 60, np.uint8)
        y0, x0 = (size[1] - small.shape[0]) // 2, (size[0] - small.shape[1]) // 2
        frame[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    with open(dst, "wb") as f:
        f.write(f"YUV4MPEG2 W{size[0]} H{size[1]} F25:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return dst


def take_part(page, link: str, group: str, expect_check: bool = True) -> None:
    page.goto(link)
    page.select_option("select[name='group']", group)
    page.check("#agree")
    page.click("#start")
    if expect_check:
        page.wait_for_function("!document.getElementById('play').disabled", timeout=30_000)
    else:  # no face: the check says so in words; the viewer goes on anyway (the quality rule decides)
        page.wait_for_function("document.getElementById('check-status').textContent.includes('No face')",
                               timeout=30_000)
        page.evaluate("document.getElementById('play').disabled = false")
    page.click("#play")
    page.wait_for_selector("#done:not([hidden])", timeout=60_000)


def run_viewers(sync_api, y4m: str, links: list[str], groups: list[str], expect_check: bool = True) -> list[str]:
    errors = []
    with sync_api.sync_playwright() as p:
        browser = launch(p, y4m)
        pages = []
        for _ in links:
            page = browser.new_context().new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            pages.append(page)
        for page, link, group in zip(pages, links, groups):  # the three watch at once, as a panel does
            page.goto(link)
        for page, link, group in zip(pages, links, groups):
            take_part(page, link, group, expect_check)
        browser.close()
    return errors


def check_study(url: str, study_id: str) -> str:
    info = api(url, f"/v1/studies/{study_id}")
    assert info["viewers"] == {"started": 4, "completed": 4, "excluded": 1, "included": 3}, info["viewers"]
    excluded = [v for v in info["viewer_table"] if v["excluded"]]
    assert len(excluded) == 1 and "readable in 0%" in excluded[0]["reason"]
    report = api(url, f"/v1/studies/{study_id}/report")
    assert "n = 3" in report and "NaN" not in re.sub(r"data:[^'\"]+", "", report)  # text, not inline pictures
    return report


@pytest.mark.parametrize("kind", ["sqlite"] + (["postgresql"] if POSTGRES else []))
def test_viewers_in_chromium_then_kill_9_and_restart(kind, samples, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    db = f"sqlite:///{tmp_path}/studies.db" if kind == "sqlite" else POSTGRES
    faces = still_y4m(str(tmp_path / "cam.y4m"), cv2.imread(os.path.join(samples, "facerec_obama.jpg")))
    nobody = still_y4m(str(tmp_path / "grey.y4m"))
    ad = open(os.path.join(samples, "facerec_short_hamilton_clip.mp4"), "rb").read()
    log = str(tmp_path / "serve.log")
    with server(db, log) as (url, proc), server(db, log) as (url2, _):
        study = api(url, "/v1/studies?name=Spot&questions=" + urllib.request.quote('[{"name":"group","choices":["a","b"]}]'),
                    ad, "POST")
        token = study["participant_url"].rsplit("/", 1)[1]
        # viewers split between the two servers when there are two (PostgreSQL: one shared study)
        second = url2 if kind == "postgresql" else url
        errors = run_viewers(sync_api, faces, [f"{url}/p/{token}", f"{second}/p/{token}", f"{url}/p/{token}"],
                             ["a", "b", "a"])
        errors += run_viewers(sync_api, nobody, [f"{second}/p/{token}"], ["b"], expect_check=False)
        assert not errors, errors
        first_report = check_study(url, study["id"])
        if kind == "postgresql":  # the other server gives the same report: no study state of its own
            assert "n = 3" in check_study(url2, study["id"])
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    with server(db, log) as (url, _):
        again = check_study(url, study["id"])
        assert again.count("<tr>") == first_report.count("<tr>")


def test_pages_fit_a_phone_and_docs_work_offline(samples, tmp_path):
    """The web page, /docs (Swagger UI from the package, no CDN), a study's viewer page and its
    report: at 1400 and 400 px wide nothing widens the page, the console stays clean, and every
    request stays on the server."""
    sync_api = pytest.importorskip("playwright.sync_api")
    ad = open(os.path.join(samples, "facerec_short_hamilton_clip.mp4"), "rb").read()
    with server(f"sqlite:///{tmp_path}/studies.db", str(tmp_path / "serve.log")) as (url, _):
        study = api(url, "/v1/studies?name=Spot", ad, "POST")
        api(url, f"/v1/studies/{study['id']}/recordings?offset_s=0", ad, "POST")
        pages = ["/", "/docs", "/model", study["participant_url"].replace(url, ""),
                 f"/v1/studies/{study['id']}/report"]
        errors, foreign = [], []
        with sync_api.sync_playwright() as p:
            browser = launch(p, still_y4m(str(tmp_path / "grey.y4m")))
            for width in (1400, 400):
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.on("request", lambda r: foreign.append(r.url) if not r.url.startswith((url, "data:", "blob:"))
                        else None)
                for path in pages:
                    page.goto(url + path)
                    page.wait_for_load_state("networkidle")
                    if path == "/docs":
                        page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
                    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                    assert overflow <= 1, (path, width, overflow)
                page.close()
            browser.close()
        assert not errors, errors
        assert not foreign, foreign
