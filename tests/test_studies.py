"""Ad-test studies: the database (SQLite here; PostgreSQL too when EMOSCOPE_TEST_POSTGRES names a
server), the analyst's API behind its key, the viewers' link, camera frames over the WebSocket
stored against the ad's time, the quality rule, withdrawal, the report and the norms."""

from __future__ import annotations

import os
import struct
import time

import cv2
import pytest
from fastapi.testclient import TestClient

from emoscope.serve.app import create_app
from emoscope.serve.settings import Settings
from emoscope.studies.store import StudyError, StudyStore

POSTGRES = os.environ.get("EMOSCOPE_TEST_POSTGRES")
DATABASES = ["sqlite"] + (["postgresql"] if POSTGRES else [])


def database_url(kind: str, tmp_path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/studies.db"
    return POSTGRES


@pytest.fixture
def ad_bytes(samples) -> bytes:
    return open(os.path.join(samples, "facerec_short_hamilton_clip.mp4"), "rb").read()


@pytest.fixture(scope="module")
def camera_frames():
    """The sample clip as the viewer page sends it: 320 px JPEGs, one every 6th frame (5 per second)."""
    from conftest import shared_path
    cap = cv2.VideoCapture(shared_path("samples", "facerec_short_hamilton_clip.mp4"))
    frames, i = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i % 6 == 0:
            small = cv2.resize(frame, (320, 180))
            frames.append((i / 29.97, cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 75])[1].tobytes()))
        i += 1
    return frames


def message(t: float, jpeg: bytes) -> bytes:
    return struct.pack("<d", t) + jpeg


@pytest.mark.parametrize("kind", DATABASES)
def test_store_keeps_studies_viewers_and_frames(kind, tmp_path, ad_bytes):
    store = StudyStore(database_url(kind, tmp_path))
    study = store.create_study("Spot A", ad_bytes, "spot.mp4", [{"name": "group", "choices": ["x", "y"]}], 30)
    assert study["viewers"] == {"started": 0, "completed": 0, "excluded": 0, "included": 0}
    assert 9 < study["ad_seconds"] < 9.3 and len(study["token"]) >= 32
    viewer, key = store.add_viewer(study["id"], {"group": "x"}, study["questions"])
    assert store.viewer(study["id"], viewer, key) and not store.viewer(study["id"], viewer, key + "x")
    with pytest.raises(StudyError, match="choose one of"):
        store.add_viewer(study["id"], {"group": "z"}, study["questions"])
    store.add_frames(study["id"], viewer, [{"ad_time": t / 2, "face": None} for t in range(18)])
    table = store.viewer_table(study["id"])
    assert bool(table.loc[0, "excluded"]) and "0%" in table.loc[0, "reason"]  # no face: excluded, with the reason
    again = StudyStore(database_url(kind, tmp_path))  # reopening migrates nothing and finds everything
    assert len(again.frames(study["id"])) == 18 and again.get_study(study["id"])["name"] == "Spot A"
    store.withdraw(viewer)
    assert store.frames(study["id"]).empty and store.get_study(study["id"])["viewers"]["started"] == 0
    with pytest.raises(StudyError, match="cannot be read as a video"):
        store.create_study("bad", b"\x00" * 5000, "x.mp4")
    store.delete_study(study["id"])
    with pytest.raises(StudyError, match="no study"):
        store.get_study(study["id"])


def test_retention_deletes_old_studies(tmp_path, ad_bytes):
    store = StudyStore(database_url("sqlite", tmp_path))
    study = store.create_study("Old", ad_bytes, "spot.mp4", retention_days=1)
    from sqlalchemy import update
    from emoscope.studies import schema
    with store.begin() as conn:
        conn.execute(update(schema.studies).values(created_at=time.time() - 2 * 86400))
    assert store.purge_expired() == 1 and store.list_studies() == []
    assert study["id"]


@pytest.fixture
def service(tmp_path, request):
    from conftest import shared_path
    kind = getattr(request, "param", "sqlite")
    settings = Settings(detector_model=shared_path("models", "face_detection_yunet.onnx"), threads=1,
                        db=database_url(kind, tmp_path), study_max_fps=1000)
    settings.api_key = "secret"
    with TestClient(create_app(settings)) as c:
        yield c


ADMIN = {"X-API-Key": "secret"}


def watch(client, token: str, frames, answers: dict, camera=True) -> int:
    """One viewer through the link: join, the camera check, the ad's frames, done."""
    join = client.post(f"/p/{token}/viewers", json={"consent": True, "answers": answers})
    assert join.status_code == 201, join.text
    viewer, key = join.json()["viewer"], join.json()["key"]
    with client.websocket_connect(f"/p/{token}/ws?viewer={viewer}&key={key}") as ws:
        ws.send_bytes(message(-1, frames[0][1]))
        check = ws.receive_json()
        assert check["check"] and ("advice" in check)
        for t, jpeg in frames:
            ws.send_bytes(message(t, jpeg if camera else blank_jpeg()))
            answer = ws.receive_json()
            assert answer["t"] == pytest.approx(t) and "error" not in answer, answer
    assert client.post(f"/p/{token}/viewers/{viewer}/done?key={key}").status_code == 200
    return viewer


def blank_jpeg() -> bytes:
    import numpy as np
    return cv2.imencode(".jpg", np.full((180, 320, 3), 90, np.uint8))[1].tobytes()


@pytest.mark.slow
@pytest.mark.parametrize("service", DATABASES, indirect=True)
def test_viewers_watch_from_the_link_and_the_report_fills_in(service, ad_bytes, camera_frames):
    c = service
    assert c.post("/v1/studies?name=Spot", content=ad_bytes).status_code == 401  # the admin API needs the key
    r = c.post("/v1/studies?name=Spot&questions=" + '[{"name":"group","choices":["a","b"]}]', content=ad_bytes,
               headers=ADMIN)
    assert r.status_code == 201, r.text
    study = r.json()
    token = study["participant_url"].rsplit("/", 1)[1]
    assert c.get(f"/p/{token}").status_code == 200 and "EU AI Act" in c.get(f"/p/{token}").text
    assert c.get(f"/p/{token}/info").json()["questions"][0]["choices"] == ["a", "b"]
    assert c.get(f"/p/{token}/ad").content == ad_bytes
    for group in ("a", "b", "a"):
        watch(c, token, camera_frames, {"group": group})
    no_face = watch(c, token, camera_frames, {"group": "b"}, camera=False)
    info = c.get(f"/v1/studies/{study['id']}", headers=ADMIN).json()
    assert info["viewers"] == {"started": 4, "completed": 4, "excluded": 1, "included": 3}
    excluded = [v for v in info["viewer_table"] if v["excluded"]]
    assert [v["viewer"] for v in excluded] == [no_face] and "readable in 0%" in excluded[0]["reason"]
    report = c.get(f"/v1/studies/{study['id']}/report", headers=ADMIN)
    assert report.status_code == 200 and "n = 3" in report.text and "Groups compared" in report.text
    assert c.get(f"/v1/studies/{study['id']}/files/report.pdf", headers=ADMIN).content.startswith(b"%PDF")
    per_second = c.get(f"/v1/studies/{study['id']}/files/per_second.csv", headers=ADMIN).text.splitlines()
    assert per_second[0].startswith("second,viewers") and len(per_second) == 1 + 9  # the ad's 9.18 s: 0 to 8
    assert c.delete(f"/v1/studies/{study['id']}", headers=ADMIN).status_code == 200
    assert c.get(f"/p/{token}/info").status_code == 404


def test_a_viewer_key_opens_nothing_else(service, ad_bytes, camera_frames):
    c = service
    one = c.post("/v1/studies?name=One", content=ad_bytes, headers=ADMIN).json()
    two = c.post("/v1/studies?name=Two", content=ad_bytes, headers=ADMIN).json()
    t1, t2 = (s["participant_url"].rsplit("/", 1)[1] for s in (one, two))
    a = c.post(f"/p/{t1}/viewers", json={"consent": True}).json()
    b = c.post(f"/p/{t1}/viewers", json={"consent": True}).json()
    assert c.post(f"/p/{t1}/viewers", json={}).status_code == 422  # no consent, no viewer
    # another viewer's key, another study's link, or no key: refused
    assert c.delete(f"/p/{t1}/viewers/{b['viewer']}?key={a['key']}").status_code == 403
    assert c.post(f"/p/{t2}/viewers/{a['viewer']}/done?key={a['key']}").status_code == 403
    for path in (f"/v1/studies/{one['id']}", f"/v1/studies/{one['id']}/report", "/v1/studies"):
        assert c.get(path).status_code == 401 and c.get(path, headers={"X-API-Key": a["key"]}).status_code == 401
    assert c.get("/p/not-a-token/info").status_code == 404
    with pytest.raises(Exception):
        with c.websocket_connect(f"/p/{t1}/ws?viewer={b['viewer']}&key={a['key']}") as ws:
            ws.receive_json()
    # bounded frames: one over the size limit closes the socket; a bad header closes it too
    with c.websocket_connect(f"/p/{t1}/ws?viewer={a['viewer']}&key={a['key']}") as ws:
        ws.send_bytes(message(0.0, b"\xff" * (300 * 1024)))
        assert ws.receive()["code"] == 1009
    with c.websocket_connect(f"/p/{t1}/ws?viewer={a['viewer']}&key={a['key']}") as ws:
        ws.send_bytes(b"abc")
        assert ws.receive()["code"] == 1003
    # withdrawing deletes the viewer's frames
    with c.websocket_connect(f"/p/{t1}/ws?viewer={a['viewer']}&key={a['key']}") as ws:
        for t, jpeg in camera_frames[:3]:
            ws.send_bytes(message(t, jpeg))
            ws.receive_json()
    store = StudyStore(c.app.state.settings.db)
    assert len(store.frames(one["id"])) == 3
    assert c.delete(f"/p/{t1}/viewers/{a['viewer']}?key={a['key']}").status_code == 200
    assert store.frames(one["id"]).empty


def test_frames_faster_than_the_rate_limit_are_dropped(tmp_path, ad_bytes, camera_frames):
    from conftest import shared_path
    settings = Settings(detector_model=shared_path("models", "face_detection_yunet.onnx"), threads=1,
                        db=database_url("sqlite", tmp_path), study_max_fps=2)
    with TestClient(create_app(settings)) as c:
        study = c.post("/v1/studies?name=Rate", content=ad_bytes).json()
        token = study["participant_url"].rsplit("/", 1)[1]
        v = c.post(f"/p/{token}/viewers", json={"consent": True}).json()
        with c.websocket_connect(f"/p/{token}/ws?viewer={v['viewer']}&key={v['key']}") as ws:
            for t, jpeg in camera_frames[:12]:
                ws.send_bytes(message(t, jpeg))
            ws.send_bytes(message(9.0, camera_frames[0][1]))
            answers = []
            while not answers or answers[-1]["t"] != 9.0:
                time.sleep(0.6)  # past the 0.5 s gap: the last frame is analysed and answered
                ws.send_bytes(message(9.0, camera_frames[0][1]))
                answers.append(ws.receive_json())
        assert answers[-1]["dropped"] >= 5
        assert len(StudyStore(settings.db).frames(study["id"])) < 12


def test_norms_place_a_study_among_three_closed_ones(tmp_path, ad_bytes):
    from emoscope.analyze.face import Face
    from emoscope.studies.report import close_study, write_study_report
    store = StudyStore(database_url("sqlite", tmp_path))

    def face(score: float) -> Face:
        probs = {"angry": 0.0, "disgust": 0.0, "fear": 0.0, "happy": max(score, 0), "neutral": 1 - abs(score),
                 "sad": max(-score, 0), "surprise": 0.0}
        return Face((0, 0, 80, 80), max(probs, key=probs.get), probs, 0.9, "neutral", score, quality=0.9,
                    readable=True)

    ids = []
    for k, level in enumerate((-0.5, 0.0, 0.2, 0.6)):
        study = store.create_study(f"ad {k}", ad_bytes, "spot.mp4")
        for v in range(2):
            viewer, _ = store.add_viewer(study["id"], {}, [])
            store.add_frames(study["id"], viewer, [{"ad_time": t / 4, "face": face(level + 0.05 * v)}
                                                   for t in range(37)])
        ids.append(study["id"])
    for study_id in ids[:2]:
        close_study(store, study_id, str(tmp_path / study_id))
    text = open(write_study_report(store, ids[3], str(tmp_path / "r3"))).read()
    assert "at least 3 other closed studies" in text
    close_study(store, ids[2], str(tmp_path / ids[2]))
    text = open(write_study_report(store, ids[3], str(tmp_path / "r3"))).read()
    assert "3 other closed studies" in text and "<polygon" in text
    assert "<td>100</td>" in text  # the happiest ad sits above all three others


def test_recordings_made_the_old_way_join_a_study(service, ad_bytes):
    c = service
    study = c.post("/v1/studies?name=Imported", content=ad_bytes, headers=ADMIN).json()
    r = c.post(f"/v1/studies/{study['id']}/recordings?offset_s=0&name=viewer1.mp4", content=ad_bytes, headers=ADMIN)
    assert r.status_code == 201, r.text
    assert r.json()["frames"] >= 40  # 9 s at 5 frames a second
    bad = c.post(f"/v1/studies/{study['id']}/recordings?offset_s=60", content=ad_bytes, headers=ADMIN)
    assert bad.status_code == 422 and "past the recording's end" in bad.json()["error"]
    assert c.post(f"/v1/studies/{study['id']}/recordings?offset_s=nan", content=ad_bytes,
                  headers=ADMIN).status_code == 422
    info = c.get(f"/v1/studies/{study['id']}", headers=ADMIN).json()
    assert info["viewers"]["started"] == 1 and info["viewer_table"][0]["source"] == "recording"


def test_an_unwritable_database_place_turns_studies_off_not_the_server(tmp_path):
    """In a read-only container the default database cannot be made: the server still serves
    photos, and the study routes say why they are off (503)."""
    from conftest import shared_path
    (tmp_path / "file").write_text("x")
    settings = Settings(detector_model=shared_path("models", "face_detection_yunet.onnx"), threads=1,
                        db=f"sqlite:///{tmp_path}/file/studies.db")
    with TestClient(create_app(settings)) as c:
        assert c.get("/health").status_code == 200
        r = c.get("/v1/studies")
        assert r.status_code == 503 and "cannot create" in r.json()["error"]
    with pytest.raises(StudyError, match="writable place"):
        StudyStore(settings.db)
