"""The face landmarker: the ONNX conversion against the TFLite reference, the geometry of head pose
(mirror, in-plane rotation), blendshapes that follow expressions on real photos, the per-frame
research table and the H.264 annotated video."""

from __future__ import annotations

import json
import os
import zipfile

import cv2
import numpy as np
import pytest

from conftest import shared_path

pytest.importorskip("onnx")
pytest.importorskip("tflite")


@pytest.fixture(scope="module")
def task() -> str:
    return shared_path("models", "face_landmarker.task")


@pytest.fixture(scope="module")
def analyzer(task):
    from emoscope import Analyzer
    return Analyzer(detector_model=shared_path("models", "face_detection_yunet.onnx"), mesh=True, mesh_model=task,
                    threads=1)


def sample(name: str) -> np.ndarray:
    return cv2.imread(shared_path("samples", name))


def test_conversion_matches_the_tflite_reference(task, analyzer):
    """On the sample photos' crops: landmarks within 1 px and blendshapes within 0.02 of LiteRT
    running the original TFLite models."""
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    from emoscope import mesh as contract
    from emoscope.runtime.landmarker import BLENDSHAPES_FILE, LANDMARKS_FILE
    with zipfile.ZipFile(task) as z:
        ref = {n: litert.Interpreter(model_content=z.read(n)) for n in (LANDMARKS_FILE, BLENDSHAPES_FILE)}
    for it in ref.values():
        it.allocate_tensors()

    def run(name, x):
        it = ref[name]
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        return [it.get_tensor(o["index"]) for o in it.get_output_details()]
    landmarker = analyzer.landmarker
    checked = 0
    for name in ("facerec_obama.jpg", "facerec_two_people.jpg", "skimage_astronaut.png"):
        img = sample(name)
        for det in analyzer.detector.detect(img):
            x, m, side = landmarker.crop(img, det.box, det.landmarks[:2])
            ours = landmarker.measure(img, det.box, det.landmarks[:2])
            points = contract.to_image(run(LANDMARKS_FILE, x)[0].reshape(-1, 3), m, side)
            assert np.abs(points[:, :2] - ours.mesh[:, :2]).max() < 1.0
            subset = points[list(contract.BLENDSHAPE_LANDMARKS), :2][None].astype(np.float32)
            blend = run(BLENDSHAPES_FILE, subset)[0].reshape(-1)
            assert np.abs(blend - np.array([ours.blendshapes[b] for b in contract.BLENDSHAPES])).max() < 0.02
            checked += 1
    assert checked == 4


def mirrored(analyzer, img):
    return analyzer.analyze(img[:, ::-1].copy())


def test_a_mirror_flips_yaw_and_roll(analyzer):
    for name in ("facerec_two_people.jpg", "skimage_astronaut.png"):
        img = sample(name)
        faces = sorted(analyzer.analyze(img), key=lambda f: f.box[0])
        flipped = sorted(mirrored(analyzer, img), key=lambda f: -f.box[0])
        assert len(faces) == len(flipped)
        for a, b in zip(faces, flipped):
            assert abs(a.head_pose["yaw"] + b.head_pose["yaw"]) < 4, (a.head_pose, b.head_pose)
            assert abs(a.head_pose["roll"] + b.head_pose["roll"]) < 4
            assert abs(a.head_pose["pitch"] - b.head_pose["pitch"]) < 4
    two = sorted(analyzer.analyze(sample("facerec_two_people.jpg")), key=lambda f: f.box[0])
    assert all(abs(f.head_pose["yaw"]) > 5 for f in two)  # both turned; the mirror test is not trivial


def test_an_in_plane_rotation_moves_roll(analyzer):
    img = sample("facerec_obama.jpg")
    before = analyzer.analyze(img)[0].head_pose["roll"]
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), -20, 1.0)  # 20 degrees clockwise on screen
    turned = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    after = analyzer.analyze(turned)[0].head_pose["roll"]
    assert abs((after - before) - 20) <= 5, (before, after)


def test_blendshapes_follow_expressions_on_real_photos(analyzer):
    web = shared_path("datasets", "web_faces.zip")
    means = {}
    with zipfile.ZipFile(web) as z:
        for cls in ("surprise", "neutral", "happiness"):
            names = sorted(n for n in z.namelist() if f"/{cls}/" in n and n.endswith(".jpg"))[:24]
            values = []
            for n in names:
                img = cv2.imdecode(np.frombuffer(z.read(n), np.uint8), cv2.IMREAD_COLOR)
                faces = analyzer.analyze(img)
                if faces:
                    f = max(faces, key=lambda f: f.box[2] * f.box[3])
                    values.append((f.blendshapes["jawOpen"],
                                   (f.blendshapes["mouthSmileLeft"] + f.blendshapes["mouthSmileRight"]) / 2))
            means[cls] = np.mean(values, axis=0)
    assert means["surprise"][0] > means["neutral"][0] + 0.1
    assert means["happiness"][1] > means["neutral"][1] + 0.2


def test_face_fields_units_and_action_units(analyzer):
    from emoscope.mesh import ACTION_UNITS, BLENDSHAPES
    img = sample("facerec_obama.jpg")
    face = analyzer.analyze(img)[0]
    assert face.mesh.shape == (478, 3)
    x, y, w, h = face.box
    inside = (face.mesh[:, 0] > x - w * 0.3) & (face.mesh[:, 0] < x + w * 1.3) & (face.mesh[:, 1] > y - h * 0.3)
    assert inside.mean() > 0.98  # pixels of the image, around the face
    assert set(face.blendshapes) == set(BLENDSHAPES) and set(face.action_units) == set(ACTION_UNITS)
    assert face.eyes_open and face.attention and abs(face.gaze["yaw"]) < 20
    d = face.to_dict()
    assert len(d["mesh"]) == 478 and json.dumps(d)
    half = analyzer.analyze(cv2.resize(img, None, fx=0.5, fy=0.5))[0].scaled(2.0)
    assert np.abs(half.mesh[:, :2] - face.mesh[:, :2]).mean() < 4
    assert analyzer.analyze(img, mesh=False)[0].mesh is None


def blank_then_faces(path: str) -> None:
    """12 grey frames, then 12 frames of the sample portrait."""
    face = cv2.resize(sample("facerec_obama.jpg"), (320, 400))
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 12, (320, 400))
    for i in range(24):
        writer.write(np.full_like(face, 90) if i < 12 else face)
    writer.release()


def test_frame_table_and_h264_video(tmp_path, task):
    from emoscope.cli import main
    pytest.importorskip("av")
    video = str(tmp_path / "clip.avi")
    blank_then_faces(video)
    out = tmp_path / "out"
    assert main(["analyze", video, "--out", str(out), "--annotate", "--mesh", "--mesh-model", task, "--classify-every",
                 "2", "--detector-model", shared_path("models", "face_detection_yunet.onnx")]) == 0
    import pandas as pd
    frames = pd.read_csv(out / "clip.frames.csv")
    assert sorted(frames["frame"].unique()) == list(range(24))
    empty = frames[frames["success"] == 0]
    assert sorted(empty["frame"]) == list(range(12)) and empty["face_id"].isna().all()
    found = frames[frames["success"] == 1]
    assert len(found) == 12 and found["face_id"].nunique() == 1
    # the still face is read by the classifier in every other frame; its expression in between is
    # that reading fused with the frame's own blendshapes
    assert list(found["classified"]) == [True, False] * 6 and empty["classified"].isna().all()
    carried = found[~found["classified"].astype(bool)]
    assert (carried["expression_from"] == "image+blendshapes").all()
    for col in ("timestamp", "confidence", "yaw", "gaze_yaw", "jawOpen", "AU12", "raw_happy", "happy", "lm0_x",
                "x_477", "z_0", "attention"):
        assert col in frames.columns, col
    assert pd.read_parquet(out / "clip.frames.parquet").shape == frames.shape
    import av
    with av.open(str(out / "clip.annotated.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert sum(1 for _ in container.decode(stream)) == 24
    timeline = pd.read_csv(out / "clip.timeline.csv")
    assert {"yaw", "pitch", "roll", "jawOpen"} <= set(timeline.columns)
    # the report shows the mesh's measures per person and links the annotated video
    report = (out / "clip.report.html").read_text()
    for words in ("facing the screen", "head turn (median yaw)", "strongest action units (mean)", "AU",
                  "href='clip.annotated.mp4'"):
        assert words in report, words


def test_service_measures_the_mesh_on_request(task):
    from fastapi.testclient import TestClient
    from emoscope.serve.app import create_app
    from emoscope.serve.settings import Settings
    photo = open(shared_path("samples", "facerec_obama.jpg"), "rb").read()
    yunet = shared_path("models", "face_detection_yunet.onnx")
    with TestClient(create_app(Settings(detector_model=yunet, threads=1, workers=1, mesh=True, mesh_model=task))) as c:
        face = c.post("/v1/analyze?mesh=true", content=photo).json()["faces"][0]
        assert len(face["mesh"]) == 478 and "jawOpen" in face["blendshapes"] and "yaw" in face["head_pose"]
        assert "mesh" not in c.post("/v1/analyze", content=photo).json()["faces"][0]
        with c.websocket_connect("/v1/stream?mesh=true") as ws:
            ws.send_bytes(photo)
            assert "attention" in ws.receive_json()["faces"][0]
    with TestClient(create_app(Settings(detector_model=yunet, threads=1, workers=1))) as c:
        r = c.post("/v1/analyze?mesh=true", content=photo)
        assert r.status_code == 400 and "--mesh" in r.json()["error"]


def test_landmarker_is_found_like_yunet(tmp_path, monkeypatch, task):
    from emoscope.runtime.assets import LANDMARKER, ModelNotFoundError
    from emoscope.runtime.landmarker import converted_models
    assert LANDMARKER.find(task) == task
    monkeypatch.setenv("EMOSCOPE_LANDMARKER_MODEL", str(tmp_path / "missing.task"))
    with pytest.raises(ModelNotFoundError, match="missing.task"):
        LANDMARKER.find()
    monkeypatch.delenv("EMOSCOPE_LANDMARKER_MODEL")
    monkeypatch.setenv("EMOSCOPE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelNotFoundError, match="downloading is off"):
        LANDMARKER.find(download=False)
    (tmp_path / "bad.task").write_bytes(b"not a zip")
    with pytest.raises(ModelNotFoundError, match="not a MediaPipe face landmarker bundle"):
        converted_models(str(tmp_path / "bad.task"))
    paths = converted_models(task)
    assert all(os.path.getsize(p) > 100_000 for p in paths)
    assert converted_models(task) == paths  # converted once, then read from the cache


def test_a_missing_landmarker_is_said_in_plain_words(tmp_path):
    import subprocess
    import sys

    from conftest import REPO
    r = subprocess.run([sys.executable, "-m", "emoscope.cli", "analyze", shared_path("samples", "facerec_obama.jpg"),
                        "--mesh", "--mesh-model", str(tmp_path / "missing.task"), "--out", str(tmp_path / "out"),
                        "--detector-model", shared_path("models", "face_detection_yunet.onnx")],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and "missing.task" in r.stderr and "Traceback" not in r.stderr


def web_faces_subset(tmp_path, per_class: dict[str, int]) -> tuple[str, str]:
    """A zip of the first web_faces photos of each class in each part, and its split file."""
    web = shared_path("datasets", "web_faces.zip")
    split_lines = [line.strip().split(",") for line in open(os.path.join(os.path.dirname(__file__), "..", "configs",
                                                                         "splits", "web-faces.csv"))
                   if not line.startswith("#") and line.strip()]
    chosen = []
    for part, n in per_class.items():
        by_class: dict[str, list[str]] = {}
        for sid, s in split_lines:
            if s == part:
                by_class.setdefault(sid.split("/")[-2], []).append(sid)
        chosen += [(sid, part) for ids in by_class.values() for sid in sorted(ids)[:n]]
    data, split_file = str(tmp_path / "faces.zip"), str(tmp_path / "split.csv")
    with zipfile.ZipFile(web) as src, zipfile.ZipFile(data, "w") as dst:
        for sid, _ in chosen:
            dst.writestr(sid, src.read(sid))
    with open(split_file, "w") as f:
        f.writelines(f"{sid},{part}\n" for sid, part in chosen)
    return data, split_file


def test_blendshape_expert_end_to_end(tmp_path, task):
    """`emoscope blendshape-expert` fits the reading into a model's metadata; the Analyzer then
    reads each face with the mesh from the image and its blendshapes (photos and video frames
    alike), and without the mesh from the image alone; `evaluate --pipeline --mesh` scores it."""
    pytest.importorskip("sklearn")
    import shutil

    from emoscope import Analyzer
    from emoscope.cli import main
    from emoscope.runtime.assets import embedded_model
    yunet = shared_path("models", "face_detection_yunet.onnx")
    model = str(tmp_path / "expression.onnx")
    shutil.copy(embedded_model("expression-int8"), model)
    data, split_file = web_faces_subset(tmp_path, {"train": 9, "val": 6})
    assert main(["blendshape-expert", model, "--data", data, "--split-file", split_file, "--detector-model", yunet,
                 "--mesh-model", task, "--threads", "1"]) == 0
    analyzer = Analyzer(model, detector_model=yunet, mesh=True, mesh_model=task, threads=1)
    expert = analyzer.expert  # fitted here, replacing the one the shipped model carries
    assert expert.fitted["split_file"] == "split.csv"
    assert expert.fitted["fit_faces"] >= 50 and expert.fitted["choose_faces"] >= 30
    img = sample("facerec_obama.jpg")
    face = analyzer.analyze(img)[0]
    image_only = analyzer.analyze(img, mesh=False)[0]
    assert face.expression_from == "image+blendshapes" and image_only.expression_from is None
    from emoscope.mesh import BLENDSHAPES
    image_probs = np.array([[image_only.probs[c] for c in analyzer.classes]])
    expected = expert.fuse(image_probs, np.array([[face.blendshapes[b] for b in BLENDSHAPES]]))[0]
    assert np.allclose([face.probs[c] for c in analyzer.classes], expected, atol=2e-3)
    tracked = analyzer.track_frame(img, analyzer.new_tracker(), 0)[0]
    assert tracked.expression_from == "image+blendshapes"
    assert np.allclose(list(tracked.raw_probs.values()), list(face.probs.values()), atol=1e-4)
    from emoscope.contract import BlendshapeExpert, update_props
    plain = str(tmp_path / "plain.onnx")  # a model without an expert reads from the image alone
    shutil.copy(model, plain)
    update_props(plain, lambda props: props.pop(BlendshapeExpert.KEY))
    plain_face = Analyzer(plain, detector_model=yunet, mesh=True, mesh_model=task, threads=1).analyze(img)[0]
    assert plain_face.expression_from == "image" and plain_face.probs == image_only.probs
    out = tmp_path / "eval"
    assert main(["evaluate", "--pipeline", "--mesh", "--model", model, "--data", data, "--split-file", split_file,
                 "--split", "val", "--detector-model", yunet, "--mesh-model", task, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["expression_from_blendshapes"] and metrics["faces_found"] >= 30


def test_blendshape_expert_refuses_what_it_cannot_use(tmp_path, task, capsys):
    from emoscope.cli import main
    yunet = shared_path("models", "face_detection_yunet.onnx")
    with pytest.raises(SystemExit, match="is not an ONNX file"):
        main(["blendshape-expert", str(tmp_path / "missing.onnx"), "--data", "x.zip"])
    pytest.importorskip("sklearn")
    import shutil

    from emoscope.runtime.assets import embedded_model
    model = str(tmp_path / "expression.onnx")
    shutil.copy(embedded_model("expression-int8"), model)
    data, split_file = web_faces_subset(tmp_path, {"val": 3})  # no training part
    with pytest.raises(SystemExit, match="no photos in its 'train' part"):
        main(["blendshape-expert", model, "--data", data, "--split-file", split_file, "--detector-model", yunet,
              "--mesh-model", task])


def test_no_mesh_pose_or_gaze_where_the_mesh_found_no_face(analyzer, tmp_path):
    """Frame 255 of the sample clip: the landmarker finds no face on several of the audience's
    boxes (presence near 0). Those faces carry their presence, and no mesh, pose, gaze,
    blendshapes, AUs or mesh drawing; the fit flag says why."""
    from emoscope.analyze.annotate import draw_faces
    from emoscope.analyze.timeline import measures
    from emoscope.mesh import PRESENCE_THRESHOLD
    cap = cv2.VideoCapture(shared_path("samples", "facerec_short_hamilton_clip.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 255)
    ok, frame = cap.read()
    assert ok
    faces = analyzer.analyze(frame)
    absent = [f for f in faces if f.mesh_presence is not None and f.mesh_presence < PRESENCE_THRESHOLD]
    assert len(absent) >= 2, [f.mesh_presence for f in faces]
    for f in absent:
        assert f.mesh is None and f.head_pose is None and f.gaze is None and f.blendshapes is None
        assert f.action_units is None and not f.readable and "mesh found no face" in f.unreadable
        assert set(measures(f)) == {"mesh_presence", "expression_from"}
        assert {"mesh", "head_pose", "gaze"}.isdisjoint(f.to_dict())
    # drawing the mesh draws nothing on those faces: only the faces whose mesh is there change
    plain, meshed = draw_faces(frame, absent), draw_faces(frame, absent, mesh=True)
    assert np.array_equal(plain, meshed)


def test_faces_tracked_by_their_mesh_agree_with_faces_redetected(task):
    """The first 90 frames of the sample clip: a face between full-frame detections is found
    from its previous frame's mesh (the default) instead of being re-detected; its landmarks lie
    within 2 px of the re-detected path's (median over faces), it keeps its person, the path
    finds as many faces, and re-detects a face whose mesh loses it."""
    from emoscope import Analyzer
    from emoscope.analyze.tracking import iou
    clip = shared_path("samples", "facerec_short_hamilton_clip.mp4")
    runs = {}
    for seed in (True, False):
        a = Analyzer(detector_model=shared_path("models", "face_detection_yunet.onnx"), mesh=True, mesh_model=task,
                     threads=2, seed_mesh=seed)
        runs[seed] = {i: [f for f in faces if f.mesh is not None]
                      for i, _, _, faces in a.iter_video(clip, max_frames=90, progress=False)}
    seeded, redetected = runs[True], runs[False]
    gaps = [float(np.linalg.norm(np.asarray(f.mesh)[:, :2] - np.asarray(g.mesh)[:, :2], axis=1).mean())
            for i, faces in redetected.items() for f in faces for g in seeded[i] if iou(f.box, g.box) > 0.5]
    found = sum(map(len, seeded.values())), sum(map(len, redetected.values()))
    assert len(gaps) >= 0.9 * found[1] and found[0] >= 0.95 * found[1], (len(gaps), found)
    assert float(np.median(gaps)) <= 2.0, np.percentile(gaps, [50, 90])
    ids = {f.track_id for faces in seeded.values() for f in faces}
    assert len(ids) <= len({f.track_id for faces in redetected.values() for f in faces}) + 1


def test_measuring_the_next_frames_meshes_ahead_changes_nothing(task):
    """In a file, the faces tracked by their mesh into the next frame are measured while the
    current frame is finished (`iter_video` passes the next frame along); the faces, their ids,
    labels and meshes are those of the same frames analysed one at a time."""
    from emoscope import Analyzer
    from emoscope.analyze.video import VideoReader
    clip = shared_path("samples", "facerec_short_hamilton_clip.mp4")

    def analyzer():
        return Analyzer(detector_model=shared_path("models", "face_detection_yunet.onnx"), mesh=True, mesh_model=task,
                        threads=2)
    a = analyzer()
    tracker = a.new_tracker(30.0)
    ahead, measured_ahead = [], 0
    for _, _, _, faces in a.iter_video(clip, tracker=tracker, max_frames=60, progress=False):
        ahead.append(faces)
        measured_ahead += tracker.meshing_ahead is not None
    b = analyzer()
    tracker = b.new_tracker(30.0)
    with VideoReader(clip, max_frames=60) as video:
        one_by_one = [b.track_frame(frame, tracker, step) for step, (_, frame) in enumerate(video)]
    assert measured_ahead >= 15 and len(ahead) == len(one_by_one) == 60  # (22: the frames with a face on its mesh)
    for f_ahead, f_alone in zip(ahead, one_by_one):
        assert [(f.box, f.track_id, f.label) for f in f_ahead] == [(f.box, f.track_id, f.label) for f in f_alone]
        for f, g in zip(f_ahead, f_alone):
            assert (f.mesh is None) == (g.mesh is None)
            assert f.mesh is None or np.allclose(f.mesh, g.mesh, atol=1e-3)


def test_a_face_whose_mesh_loses_it_is_redetected(analyzer, monkeypatch):
    """A tracked face whose seeded mesh finds nothing (the face is painted over, the shot goes
    on) is not kept on the mesh's word: it is looked for again in its window, and without a face
    there it is dropped."""
    img = sample("facerec_obama.jpg")
    tracker = analyzer.new_tracker(30.0)
    first = analyzer.track_frame(img, tracker, 0)
    assert len(first) == 1 and first[0].mesh is not None
    t = tracker.track(first[0].track_id)
    assert t.mesh_seed is not None and t.mesh_frame == 0
    looked = []
    redetect = analyzer._redetect
    monkeypatch.setattr(analyzer, "_redetect", lambda frame, box: looked.append(box) or redetect(frame, box))
    assert len(analyzer.track_frame(img, tracker, 1)) == 1 and looked == []  # found from its mesh alone
    x, y, w, h = first[0].box
    covered = img.copy()
    covered[y:y + h, x:x + w] = 128
    assert analyzer.track_frame(covered, tracker, 2) == []
    assert len(looked) == 1 and tracker.finished == []  # re-detected in its window, no scene cut
