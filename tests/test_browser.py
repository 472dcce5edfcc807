"""A real browser (Debian's Chromium driven by Playwright) against a live server on loopback:
the live camera overlay shows a face box (fake camera fed from the sample clip) and reconnects
when its socket drops, the upload path shows results with charts that have axes, legends and a
CSV link, a page without a camera says so in words, the console stays free of errors, and the
page fits a 400 px phone screen."""

import os
import shutil

import cv2
import pytest


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's package)")]


def write_y4m(src: str, dst: str, frames: int = 90, size=(640, 360)) -> str:
    """Chromium's fake camera reads Y4M (I420); make one from the sample clip."""
    cap = cv2.VideoCapture(src)
    with open(dst, "wb") as f:
        f.write(f"YUV4MPEG2 W{size[0]} H{size[1]} F25:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            ok, frame = cap.read()
            if not ok:
                break
            f.write(b"FRAME\n" + cv2.cvtColor(cv2.resize(frame, size), cv2.COLOR_BGR2YUV_I420).tobytes())
    cap.release()
    return dst


@pytest.fixture(scope="module")
def server():
    from conftest import serve_process, shared_path
    with serve_process("--detector-model", shared_path("models", "face_detection_yunet.onnx")) as (url, _):
        yield url


def launch(p, y4m: str):
    return p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}"])


def test_live_overlay_and_upload(server, samples, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    y4m = write_y4m(os.path.join(samples, "facerec_short_hamilton_clip.mp4"), str(tmp_path / "cam.y4m"))
    with sync_api.sync_playwright() as p:
        browser = launch(p, y4m)
        page = browser.new_page()
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        # keep a handle on every WebSocket the page opens, so the test can drop one
        page.add_init_script("""(() => { const Native = window.WebSocket; window.__sockets = [];
            window.WebSocket = function (...a) { const ws = new Native(...a); window.__sockets.push(ws); return ws; };
            window.WebSocket.prototype = Native.prototype; })();""")
        page.goto(server + "/")
        page.click("button[data-tab=live]")
        page.click("#start")
        page.wait_for_function("Number(document.getElementById('live-status').dataset.frames) >= 20", timeout=60000)
        page.wait_for_function("Number(document.getElementById('live-status').dataset.faces) >= 1", timeout=30000)
        fps = float(page.get_attribute("#live-status", "data-fps"))
        page.screenshot(path=str(tmp_path / "live.png"))
        # the overlay canvas really has a box drawn on it (non-transparent pixels)
        drawn = page.evaluate("""() => { const c = document.getElementById('overlay');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""")
        assert drawn > 200
        # the socket drops: the page reconnects by itself and frames keep coming
        frames = int(page.get_attribute("#live-status", "data-frames"))
        page.evaluate("() => window.__sockets[0].close()")
        page.wait_for_function("Number(document.getElementById('live-status').dataset.reconnects) >= 1", timeout=10000)
        page.wait_for_function(f"Number(document.getElementById('live-status').dataset.frames) > {frames + 5}",
                               timeout=30000)
        assert page.evaluate("() => window.__sockets.length") >= 2
        page.click("#stop")
        assert page.is_hidden("#stage") and page.inner_text("#live-status") == "Camera off."
        page.click("button[data-tab=upload]")
        page.set_input_files("#file", os.path.join(samples, "facerec_two_people.jpg"))
        page.wait_for_function("document.getElementById('upload-status').dataset.faces === '2'", timeout=60000)
        assert "Face 2" in page.inner_text("#faces")
        assert "neutral from" in page.inner_text("#faces")  # where the valence label's neutral band lies
        # a video after the photo: the photo is cleared, each person is shown by a face thumbnail
        page.set_input_files("#file", os.path.join(samples, "facerec_short_hamilton_clip.mp4"))
        page.wait_for_function("Number(document.getElementById('upload-status').dataset.people) > 0", timeout=120000)
        people = int(page.get_attribute("#upload-status", "data-people"))
        assert page.locator("#summary img.person").count() == people
        assert page.inner_text("#faces") == "" and page.is_hidden("#photo")
        assert page.locator("#video-legend span").count() == people  # a legend item per person, off the chart
        headers = page.locator("#summary th").all_inner_texts()
        assert "first seen" in headers and not any("_" in h for h in headers)
        assert page.get_attribute("#csv", "href").endswith("/timeline.csv")
        inked = page.evaluate("""() => { const c = document.getElementById('video-chart');
            const d = c.getContext('2d').getImageData(0, 0, 60, c.height).data;  // the y axis and its ticks
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""")
        assert inked > 300
        assert page.locator("#expression-legend span").count() == 7
        # the video plays in the page; its time moves the charts' cursor, a click on a chart seeks it
        page.wait_for_function("document.getElementById('player').readyState >= 2", timeout=20000)
        page.evaluate("document.getElementById('player').currentTime = 8.0")
        page.wait_for_function("Math.abs(document.getElementById('player').currentTime - 8.0) < 0.2", timeout=10000)
        page.wait_for_function("""parseFloat(document.querySelector('#video-chart + .cursor').style.left) >
            0.7 * document.getElementById('video-chart').clientWidth""", timeout=10000)
        page.locator("#video-chart").click(position={"x": page.locator("#video-chart").bounding_box()["width"] * 0.3,
                                                     "y": 100})
        page.wait_for_function("document.getElementById('player').currentTime < 4", timeout=10000)
        page.evaluate("document.getElementById('player').play()")
        page.wait_for_function("document.getElementById('player').currentTime > 3", timeout=20000)
        page.evaluate("document.getElementById('player').pause()")
        page.screenshot(path=str(tmp_path / "video.png"), full_page=True)
        # a phone screen: nothing wider than the page
        page.set_viewport_size({"width": 400, "height": 800})
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 400
        page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
        assert not errors, errors
        browser.close()
    print(f"live overlay: {fps:.1f} FPS")
    assert fps >= 5


def test_page_without_a_camera_says_so(server):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--use-fake-ui-for-media-stream"])
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server + "/")
        page.click("button[data-tab=live]")
        page.click("#start")
        page.wait_for_function("document.getElementById('live-status').dataset.error !== undefined", timeout=10000)
        assert "camera" in page.inner_text("#live-status").lower() and not errors
        assert page.request.get(server + "/favicon.ico").status == 200
        browser.close()


def test_campaign_page_from_upload_to_report(server, samples, tmp_path):
    """The ad test tab: the ad and two recordings uploaded, the job followed, the report opened in
    the page; a click on its valence chart seeks the ad to that second."""
    sync_api = pytest.importorskip("playwright.sync_api")
    pytest.importorskip("matplotlib")
    clip = os.path.join(samples, "facerec_short_hamilton_clip.mp4")
    paths = []
    for name, frames in (("ad.avi", 90), ("viewer1.avi", 90), ("viewer2.avi", 100)):
        cap = cv2.VideoCapture(clip)
        out = None
        for _ in range(frames):
            ok, frame = cap.read()
            out = out or cv2.VideoWriter(str(tmp_path / name), cv2.VideoWriter_fourcc(*"MJPG"), 30,
                                         (frame.shape[1], frame.shape[0]))
            out.write(frame)
        out.release()
        paths.append(str(tmp_path / name))
    with sync_api.sync_playwright() as p:
        browser = launch(p, write_y4m(clip, str(tmp_path / "cam.y4m"), frames=5))
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server + "/")
        page.click("button[data-tab=campaign]")
        page.set_input_files("#c-stimulus", paths[0])
        page.set_input_files("#c-recordings", paths[1:])
        page.fill("#c-title", "Browser ad")
        page.click("#c-run")
        page.wait_for_function("document.getElementById('c-status').dataset.done === '1'", timeout=120000)
        assert "report.pdf" in page.inner_text("#c-links")
        report = page.frame_locator("#c-report")
        report.locator("#stimulus").wait_for(state="attached", timeout=20000)
        assert "Browser ad" in report.locator("h1").inner_text()
        chart = report.locator(".synced img").first
        chart.scroll_into_view_if_needed()
        box = chart.bounding_box()
        x0, x1, seconds = (float(report.locator(".synced").first.get_attribute(a))
                           for a in ("data-x0", "data-x1", "data-seconds"))
        target = 2.0
        chart.click(position={"x": (x0 + (x1 - x0) * target / seconds) * box["width"], "y": box["height"] / 2})
        frame = next(f for f in page.frames if f.url.endswith("report.html"))
        frame.wait_for_function(f"Math.abs(document.getElementById('stimulus').currentTime - {target}) < 0.2",
                                timeout=10000)
        page.screenshot(path=str(tmp_path / "campaign.png"), full_page=True)
        assert not errors, errors
        browser.close()
