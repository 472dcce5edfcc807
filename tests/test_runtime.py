"""Inference side: detector, classifier, Analyzer on real photos and video, bad input, no torch."""

import os
import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import REPO, int8_weight_range, shared_path
from emoscope.analyze import Analyzer, Tracker
from emoscope.analyze.analyzer import FRAMES_PER_READ, frames_per_read
from emoscope.analyze.tracking import MIN_TRACK_FRAMES
from emoscope.analyze.video import VideoReader
from emoscope.labels import EXPRESSIONS
from emoscope.runtime import ModelNotFoundError, embedded_model, yunet_model


@pytest.fixture(scope="module")
def analyzer(request):
    return Analyzer(detector_model=shared_path("models", "face_detection_yunet.onnx"), threads=1)


def test_embedded_model_metadata():
    import onnxruntime as ort
    sess = ort.InferenceSession(embedded_model("expression"), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    import json
    assert json.loads(meta["classes"]) == list(EXPRESSIONS)
    assert json.loads(meta["input_size"]) == [48, 48] and meta["color"] == "gray"
    assert float(meta["temperature"]) > 0 and "margin" in json.loads(meta["crop"])
    assert os.path.getsize(embedded_model("expression")) < 15_000_000  # two networks, fp16-stored weights: 10.4 MB
    # the recipe's `emoscope ensemble` lists the CNN first, the shipped file (made from files) the Lite0
    assert sorted(meta["architecture"].split(" + ")) == ["efficientnet_lite0", "resnet_fer_ms"]


def test_yunet_lookup_order(tmp_path, monkeypatch, yunet):
    assert yunet_model(yunet) == yunet
    monkeypatch.setenv("EMOSCOPE_YUNET_MODEL", yunet)
    assert yunet_model() == yunet
    monkeypatch.setenv("EMOSCOPE_YUNET_MODEL", str(tmp_path / "missing.onnx"))
    with pytest.raises(ModelNotFoundError, match="missing.onnx"):
        yunet_model()
    monkeypatch.delenv("EMOSCOPE_YUNET_MODEL")
    monkeypatch.setenv("EMOSCOPE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelNotFoundError, match="downloading is off"):
        yunet_model(download=False)


@pytest.mark.parametrize("name,scale", [("facerec_obama.jpg", 1.0), ("facerec_two_people.jpg", 1.0),
                                        ("skimage_astronaut.png", 1.0), ("facerec_two_people.jpg", 0.37)])
def test_yunet_on_onnxruntime_matches_opencv(yunet, samples, name, scale):
    """The onnxruntime YuNet decodes and suppresses as OpenCV's FaceDetectorYN does: the same
    faces, boxes, landmarks and scores (odd sizes exercise the padding to multiples of 32)."""
    from emoscope.runtime import YuNetDetector
    img = cv2.imread(os.path.join(samples, name))
    img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale != 1 else img
    ref = cv2.FaceDetectorYN.create(yunet, "", (img.shape[1], img.shape[0]), 0.6, 0.3, 5000)
    expected = ref.detect(img)[1]
    expected = np.zeros((0, 15), np.float32) if expected is None else expected[np.argsort(-expected[:, 14])]
    ours = YuNetDetector(yunet, max_side=10_000)._raw(img)
    ours = ours[np.argsort(-ours[:, 14])]
    assert len(expected) >= 1 and ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, atol=0.01)


def test_an_image_with_no_face_found_is_tried_again_at_the_retry_side(yunet, samples):
    """A 32 px thumbnail of a face YuNet misses at its own size, and a FER2013 face scaled up to
    fill a 600 px frame, which it misses as well, are both found at RETRY_SIDE; the boxes come back
    in the image's own pixels."""
    import zipfile
    from emoscope.runtime import YuNetDetector
    img = cv2.imread(os.path.join(samples, "facerec_obama.jpg"))
    det = YuNetDetector(yunet)
    x, y, w, h = map(int, det.detect(img)[0].box)
    crop = img[max(0, int(y - 0.4 * h)):int(y + 1.4 * h), max(0, int(x - 0.4 * w)):int(x + 1.4 * w)]
    thumb = cv2.resize(crop, (32, 32), interpolation=cv2.INTER_AREA)
    assert len(det._raw(thumb)) == 0
    faces = det.detect(thumb)
    assert len(faces) == 1
    bx, by, bw, bh = faces[0].box
    assert 8 < bx + bw / 2 < 24 and 8 < by + bh / 2 < 24 and 10 < bw < 32
    with zipfile.ZipFile(shared_path("datasets", "fer2013.zip")) as z:
        face = cv2.imdecode(np.frombuffer(z.read("fer2013/test/happy/PublicTest_45911168.jpg"), np.uint8), cv2.IMREAD_COLOR)
    frame = cv2.resize(face, (600, 600), interpolation=cv2.INTER_CUBIC)
    assert len(det._raw(frame)) == 0
    faces = det.detect(frame)
    assert len(faces) == 1
    bx, by, bw, bh = faces[0].box
    assert 200 < bx + bw / 2 < 400 and 200 < by + bh / 2 < 400 and bw > 400


def test_one_and_two_faces(analyzer, samples):
    faces = analyzer.analyze(os.path.join(samples, "facerec_obama.jpg"))
    assert len(faces) == 1
    f = faces[0]
    assert set(f.probs) == set(EXPRESSIONS) and abs(sum(f.probs.values()) - 1) < 1e-3
    assert f.label == max(f.probs, key=f.probs.get) and -1 <= f.valence_score <= 1
    assert f.valence in ("positive", "negative", "neutral") and len(f.landmarks) == 5
    x, y, w, h = f.box
    assert 300 < x + w / 2 < 700 and w > 100
    two = analyzer.analyze(os.path.join(samples, "facerec_two_people.jpg"))
    assert len(two) == 2 and two[0].box[0] != two[1].box[0]


@pytest.mark.slow
def test_embedded_gender_model(samples, yunet):
    """The shipped gender model on the sample photos: two men, and the astronaut Eileen Collins."""
    a = Analyzer(detector_model=yunet, threads=1, gender=True)
    guess = {name: [max(f.gender, key=f.gender.get) for f in a.analyze(os.path.join(samples, name))]
             for name in ("facerec_obama.jpg", "facerec_two_people.jpg", "skimage_astronaut.png")}
    assert guess == {"facerec_obama.jpg": ["man"], "facerec_two_people.jpg": ["man", "man"],
                     "skimage_astronaut.png": ["woman"]}
    assert a.gender.meta.color == "rgb" and a.gender.meta.crop.square is False


def test_input_kinds_agree(analyzer, samples):
    path = os.path.join(samples, "facerec_obama.jpg")
    bgr = cv2.imread(path)
    pil = Image.open(path)
    a, b, c = analyzer.analyze(path), analyzer.analyze(bgr), analyzer.analyze(pil)
    assert a[0].box == b[0].box == c[0].box and a[0].label == b[0].label == c[0].label


def test_gray_rgba_16bit_and_exif_rotation(analyzer, samples, tmp_path):
    bgr = cv2.imread(os.path.join(samples, "facerec_obama.jpg"))
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    assert len(analyzer.analyze(gray)) == 1
    assert len(analyzer.analyze(cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA))) == 1
    assert len(analyzer.analyze(bgr.astype(np.uint16) * 257)) == 1
    rgba_png = tmp_path / "rgba.png"
    Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGBA)).save(rgba_png)
    assert len(analyzer.analyze(str(rgba_png))) == 1
    # A photo stored sideways with EXIF orientation 6 (rotate 90 CW to view) must be read upright.
    sideways = Image.fromarray(cv2.cvtColor(cv2.rotate(bgr, cv2.ROTATE_90_COUNTERCLOCKWISE), cv2.COLOR_BGR2RGB))
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways.save(tmp_path / "exif.jpg", exif=exif)
    faces = analyzer.analyze(str(tmp_path / "exif.jpg"))
    assert len(faces) == 1 and faces[0].box[3] > 150


def test_wide_images_shrink_on_decode(samples, tmp_path):
    """16-bit PNGs and EXIF-rotated JPEGs larger than max_side come back scaled, upright, 8-bit."""
    from emoscope.images import decode_image
    bgr = cv2.imread(os.path.join(samples, "facerec_obama.jpg"))
    big = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), None, fx=3, fy=3).astype(np.uint16) * 257
    png = tmp_path / "wide.png"
    Image.fromarray(big).save(png)
    assert Image.open(png).mode.startswith("I;16")
    out = decode_image(png.read_bytes(), "bgr", max_side=640)
    assert out.dtype == np.uint8 and max(out.shape[:2]) == 640
    assert abs(float(out[..., 0].mean()) - float(big.mean()) / 257) < 2
    sideways = Image.fromarray(cv2.cvtColor(cv2.rotate(bgr, cv2.ROTATE_90_COUNTERCLOCKWISE), cv2.COLOR_BGR2RGB))
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways.save(tmp_path / "exif.jpg", exif=exif)
    upright = decode_image((tmp_path / "exif.jpg").read_bytes(), "bgr", max_side=400)
    assert upright.shape[0] > upright.shape[1] and max(upright.shape[:2]) == 400  # portrait, as taken


def test_no_face_is_empty_not_error(analyzer):
    assert analyzer.analyze(np.full((240, 320, 3), 127, np.uint8)) == []


@pytest.mark.slow
def test_video_tracks_are_stable(analyzer, samples):
    tl = analyzer.analyze_video(os.path.join(samples, "facerec_short_hamilton_clip.mp4"), every=2, progress=False)
    assert len(tl) > 0 and set(EXPRESSIONS) <= set(tl.columns)
    counts = tl["track"].value_counts()
    # most detections belong to a few long-lived tracks, not one new id per frame
    assert counts.iloc[0] >= 0.3 * tl["frame"].nunique()
    assert tl["track"].nunique() <= max(3, 0.2 * len(tl))
    s = tl.summary()
    assert {"track", "dominant", "mean_valence", "peak_positive_s", "share_happy"} <= set(s.columns)
    read = s["dominant"] != "unreadable"  # a person the fit flag could rarely read has no shares
    shares = s.loc[read, [f"share_{c}" for c in EXPRESSIONS]].sum(axis=1)
    assert read.any() and np.allclose(shares, 1, atol=1e-3)


@pytest.mark.slow
def test_truncated_video_gives_partial_results_and_warning(analyzer, samples, tmp_path):
    src = os.path.join(samples, "facerec_short_hamilton_clip.mp4")
    cap = cv2.VideoCapture(src)
    fps, frames = cap.get(cv2.CAP_PROP_FPS), []
    while len(frames) < 30:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    path = str(tmp_path / "clip.avi")
    w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, (frames[0].shape[1], frames[0].shape[0]))
    for f in frames:
        w.write(f)
    w.release()
    data = open(path, "rb").read()
    cut = str(tmp_path / "cut.avi")
    open(cut, "wb").write(data[: int(len(data) * 0.5)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tl = analyzer.analyze_video(cut, progress=False)
    assert 0 < tl["frame"].max() < 29
    assert any("truncated" in str(w.message) for w in caught)


@pytest.mark.slow
def test_hamilton_clip_persons_match_a_hand_count(analyzer, samples):
    """Counted by hand once, on frames 10, 60, 150 and 262 of facerec_short_hamilton_clip.mp4, one
    frame per shot (the clip has four shots: frames 0-19, 20-81, 82-210 and 211-274): shot 1, the
    singer on stage and the pianist at the left (2); shot 2, the man in profile in the foreground
    and three audience members whose faces show behind him (4); shot 3, the singer close up (1);
    shot 4, five audience members (the woman at the left edge, Marian Robinson, Barack and
    Michelle Obama, a man at the right edge) (5). A person is counted once per shot, as tracks end
    at a scene cut: 12. The summary (tracks of at least MIN_TRACK_FRAMES frames) must hold 12
    +-30%, i.e. 9 to 15 persons, each with a face thumbnail; shorter tracks stay in the timeline,
    flagged."""
    tl = analyzer.analyze_video(os.path.join(samples, "facerec_short_hamilton_clip.mp4"), progress=False)
    summary = tl.summary()
    assert 9 <= len(summary) <= 15, tl.groupby("track")["frame"].agg(["min", "max", "size"])
    assert all(t.shape == (64, 64, 3) and t.dtype == np.uint8 for t in summary["thumbnail"])
    short = tl.groupby("track")["frame"].size() < MIN_TRACK_FRAMES
    assert (tl.groupby("track")["short_track"].first() == short).all()
    assert not set(summary["track"]) & set(short[short].index)
    # no track crosses a scene cut
    spans = tl.groupby("track")["frame"].agg(["min", "max"])
    for cut in (20, 82, 211):
        assert not ((spans["min"] < cut) & (spans["max"] >= cut)).any()


def ids(tracks) -> list[int]:
    return [t.id for t in tracks]


def test_two_faces_crossing_keep_their_ids():
    """Two faces move towards each other; while they cross, the one behind is hidden for three
    frames and comes back 40 px from where it was last seen. Constant-velocity prediction keeps
    each id on its own face (with the last box alone, the hidden face would come back as a new
    person)."""
    t = Tracker(max_gap=5)
    ids_a, ids_b = set(), set()
    for frame in range(21):
        a = (10.0 * frame, 0.0, 50.0, 50.0)            # moving right, in front
        b = (200.0 - 10.0 * frame, 10.0, 50.0, 50.0)   # moving left, behind
        if 9 <= frame <= 11:
            (ia,) = ids(t.assign(frame, [a]))
        else:
            ib, ia = ids(t.assign(frame, [b, a]))
            ids_b.add(ib)
        ids_a.add(ia)
    assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b and t.next_id == 3


def test_reid_after_a_short_occlusion_needs_the_same_look():
    t = Tracker(max_gap=10, max_center_shift=0.2)
    red, blue = np.eye(32, dtype=np.float32)[0], np.eye(32, dtype=np.float32)[5]
    (tid,) = ids(t.assign(0, [(100, 100, 50, 50)], [red]))
    t.assign(1, [(100, 100, 50, 50)], [red])
    # gone for 3 frames, back 60 px away: the same look re-links, another look is a new person
    (again,) = ids(t.assign(5, [(160, 100, 50, 50)], [red]))
    assert again == tid
    (other,) = ids(t.assign(9, [(100, 100, 50, 50)], [blue]))
    assert other != tid


def test_video_reader(samples, tmp_path):
    path = os.path.join(samples, "facerec_short_hamilton_clip.mp4")
    with pytest.raises(ValueError, match="every must be"):
        VideoReader(path, every=0)
    with pytest.raises(ValueError, match="pixel limit"):
        VideoReader(path, max_pixels=640 * 359)
    reader = VideoReader(path, every=3, max_frames=30)
    assert reader.frame_count == 275 and reader.width == 640 and reader.fps == pytest.approx(29.97, abs=0.1)
    indices = [i for i, frame in reader]
    assert indices == list(range(0, 30, 3)) and reader.frames_read == 30
    early = VideoReader(path, prefetch=2)
    for i, _ in early:
        if i == 5:
            break  # stopping early closes the reader without waiting on its decoding thread
    assert not early._thread.is_alive()
    with pytest.raises(ValueError, match="cannot open"):
        VideoReader(str(tmp_path / "missing.mp4"))


def test_scene_cut_test():
    t = Tracker()
    dark, light = np.full((90, 160, 3), 30, np.uint8), np.full((90, 160, 3), 200, np.uint8)
    assert not t.scene_cut(dark) and not t.scene_cut(dark + 5) and t.scene_cut(light) and not t.scene_cut(light)


def test_tracker_keeps_ids_through_gaps():
    t = Tracker(max_gap=4)
    ids0 = ids(t.assign(0, [(0, 0, 50, 50), (200, 0, 50, 50)]))
    ids1 = ids(t.assign(1, [(205, 2, 50, 50), (3, 1, 50, 50)]))
    assert ids1 == [ids0[1], ids0[0]]
    ids3 = ids(t.assign(3, [(6, 2, 50, 50)]))          # second face missing for a while
    ids5 = ids(t.assign(5, [(8, 2, 50, 50), (210, 4, 50, 50)]))
    assert ids3 == [ids0[0]] and ids5 == ids0
    ids20 = ids(t.assign(20, [(210, 4, 50, 50)]))       # gap too long: new person
    assert ids20[0] not in ids0


def test_tracker_presumes_only_sure_matches_and_says_which_faces_are_read():
    t = Tracker(max_gap=4, classify_every=2)
    tracks = t.assign(0, [(0, 0, 50, 50), (200, 0, 50, 50)])
    first, second = ids(tracks)
    # a box a track's prediction overlaps by IoU >= 0.5 is presumed to be it; a box moved half its
    # size (IoU 1/3) is not sure, nor a box no track is near; a known id stays
    assert t.presume(1, [(5, 0, 50, 50), (225, 0, 50, 50), (400, 0, 50, 50)], [None] * 3) == [first, None, None]
    assert t.presume(1, [(5, 0, 50, 50), (200, 0, 50, 50)], [second, None]) == [second, None]
    # one box a track: the better overlap wins
    assert t.presume(1, [(10, 0, 50, 50), (2, 0, 50, 50)], [None, None]) == [None, first]
    for track in tracks:
        track.read_frame = 0
    a, b = t.assign(1, [(5, 0, 50, 50), (225, 0, 50, 50)], known=[first, None])
    # presumed and read a frame before: its reading is carried; not presumed: read
    assert not t.due(a, first, 1) and t.due(b, None, 1)
    # read two frames before, or joined another track than the one presumed: read
    assert t.due(a, first, 2) and t.due(b, first, 1)


def test_tracker_smooths_each_tracks_probabilities():
    t = Tracker(alpha=0.4)
    onehot = np.eye(7, dtype=np.float32)
    assert np.array_equal(t.smooth(t.assign(0, [(0, 0, 50, 50), (200, 0, 50, 50)]), onehot[[0, 1]]), onehot[[0, 1]])
    # the boxes come in the other order: each keeps its own track's history
    smoothed = t.smooth(t.assign(1, [(205, 0, 50, 50), (2, 0, 50, 50)]), onehot[[2, 2]])
    assert np.allclose(smoothed, [0.4 * onehot[2] + 0.6 * onehot[1], 0.4 * onehot[2] + 0.6 * onehot[0]])


@pytest.mark.slow
def test_expressions_read_every_other_frame_are_carried_between(samples, yunet):
    """`classify_every=2`: each tracked face is read by the classifier in every other frame and its
    last reading carried into the frame between (the same raw probabilities); a face seen for the
    first time is always read; boxes and tracks are those of reading every frame."""
    clip = os.path.join(samples, "facerec_short_hamilton_clip.mp4")
    every_frame = Analyzer(detector_model=yunet, threads=1)
    halved = Analyzer(detector_model=yunet, threads=1, classify_every=2)
    with pytest.raises(ValueError, match="classify_every must be a whole number of frames, 1 or more, not 0"):
        Analyzer(detector_model=yunet, classify_every=0)
    seen: dict[int, tuple] = {}
    carried = read_again = 0
    frames = zip(every_frame.iter_video(clip, max_frames=40, progress=False),
                 halved.iter_video(clip, max_frames=40, progress=False))
    for (index, _, _, full), (_, _, _, faces) in frames:
        assert [(f.box, f.track_id) for f in faces] == [(f.box, f.track_id) for f in full]
        assert all(f.classified for f in full)
        for f in faces:
            last = seen.get(f.track_id)
            if last is None:
                assert f.classified
            elif not f.classified:
                assert last[0] == index - 1 and last[1] and f.raw_probs == last[2]
                carried += 1
            else:
                read_again += 1
            seen[f.track_id] = (index, f.classified, f.raw_probs)
    assert carried >= 20 and read_again <= carried + 5  # about one reading in two, once a face is tracked


@pytest.mark.slow
def test_inference_side_never_imports_torch(samples, yunet):
    """The core install has neither torch nor matplotlib: photos and videos are analysed without
    them (the video's summary included)."""
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'matplotlib'):\n"
        "            raise ImportError(name + ' is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import emoscope\n"
        f"a = emoscope.Analyzer(detector_model={yunet!r})\n"
        f"faces = a.analyze({os.path.join(samples, 'facerec_obama.jpg')!r})\n"
        f"tl = a.analyze_video({os.path.join(samples, 'facerec_short_hamilton_clip.mp4')!r}, max_frames=30,"
        " progress=False)\n"
        "assert len(tl.summary()) >= 1\n"
        "import emoscope.analyze.cli, emoscope.cli\n"
        "emoscope.cli.build_parser()\n"
        "assert len(faces) == 1 and 'torch' not in sys.modules and 'matplotlib' not in sys.modules\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_embedded_int8_is_default_and_agrees_with_fp32():
    from emoscope.runtime import ExpressionClassifier
    from emoscope.runtime.classifier import DEFAULT_MODEL
    q, f = ExpressionClassifier(), ExpressionClassifier("expression")
    assert DEFAULT_MODEL == "expression-int8" and q.model_path.endswith("expression-int8.onnx")
    assert f.model_path.endswith("expression.onnx") and q.classes == f.classes
    fast = ExpressionClassifier("fast")  # the smaller ensemble, by its short name
    assert fast.model_path.endswith("expression-fast-int8.onnx") and fast.classes == q.classes
    assert fast.meta.extra["architecture"] == "resnet_fer_ms + resnet_fer_ms"
    for int8 in (q, fast):  # 7-bit weights, which CPUs without VNNI add up without overflow
        assert int8_weight_range(int8.model_path) == (-64, 64)
    # on real faces (the first 300 FER2013 PrivateTest images); random pixels sit on a class
    # boundary, where any quantisation flips the top class
    import zipfile
    with zipfile.ZipFile(shared_path("datasets", "fer2013.zip")) as z:
        names = sorted(n for n in z.namelist() if "PrivateTest" in n and n.endswith(".jpg"))[:300]
        crops = np.stack([cv2.imdecode(np.frombuffer(z.read(n), np.uint8), cv2.IMREAD_GRAYSCALE) for n in names])
    assert (q.predict(crops).argmax(1) == f.predict(crops).argmax(1)).mean() > 0.95


@pytest.mark.slow
def test_detector_creation_prints_no_opencv_warning(yunet, samples):
    """OpenCV 5's 'setPreferableTarget' warning is kept out of the user's output."""
    code = ("from emoscope.analyze import Analyzer; import sys; "
            f"print(len(Analyzer(detector_model={yunet!r}).analyze({os.path.join(samples, 'facerec_obama.jpg')!r})))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "1"
    assert "setPreferableTarget" not in r.stderr and "WARN" not in r.stderr


def test_labels_are_placed_clear_of_other_faces():
    """Two faces side by side, the left one touching the top edge: its label may not go above, and
    must not land on the other face; bars go where there is room or not at all."""
    import numpy as np
    from emoscope.analyze.annotate import draw_faces, timecode
    from emoscope.analyze.face import Face
    probs = {"angry": 0.1, "disgust": 0.0, "fear": 0.0, "happy": 0.7, "neutral": 0.2, "sad": 0.0, "surprise": 0.0}
    left = Face((20, 0, 100, 100), "happy", probs, 0.9, "positive", 0.7)
    right = Face((125, 110, 100, 100), "happy", probs, 0.9, "positive", 0.7)
    blank = np.zeros((260, 400, 3), np.uint8)
    out = draw_faces(blank, [left, right], stamp=f"{timecode(83.4567)}  frame 2503")
    # nothing is drawn inside the right face's box: the left face's label went elsewhere (not above
    # the image, not onto this face) and the right face's own label sits above its box
    assert not out[114:207, 129:222].any()
    assert timecode(83.4567) == "0:01:23.457"
    assert out[-20:, :120].any()  # the timecode is burned in at the bottom left


@pytest.mark.slow
@pytest.mark.parametrize("classify_every", [1, 2])
def test_a_files_frames_read_together_match_reading_each_frame(samples, yunet, classify_every):
    """`iter_video` reads a file's faces FRAMES_PER_READ frames at a time; each frame's faces,
    tracks, readings and smoothed probabilities are those of `track_frame` one frame at a time."""
    clip = os.path.join(samples, "facerec_short_hamilton_clip.mp4")
    a = Analyzer(detector_model=yunet, threads=1, classify_every=classify_every)
    video = VideoReader(clip, max_frames=60)
    tracker = a.new_tracker(video.fps)
    one_by_one = [a.track_frame(frame, tracker, step) for step, (_, frame) in enumerate(video)]
    together = [faces for *_, faces in a.iter_video(clip, max_frames=60, progress=False)]
    assert len(together) == len(one_by_one) == 60 and sum(map(len, together)) > 60
    for faces, reference in zip(together, one_by_one):
        assert [(f.box, f.track_id, f.classified, f.label) for f in faces] == \
            [(f.box, f.track_id, f.classified, f.label) for f in reference]
        for f, r in zip(faces, reference):
            assert max(abs(f.raw_probs[c] - r.raw_probs[c]) for c in f.raw_probs) < 1e-4
            assert max(abs(f.probs[c] - r.probs[c]) for c in f.probs) < 1e-4


def test_live_video_yields_each_frame_as_it_is_analysed(samples, yunet):
    """A file's first faces come after two batches of FRAMES_PER_READ frames are located (the first
    is read while the second is located; and the next frame is taken early); `live=True` (a window
    on a file or stream) yields each frame as soon as it is analysed."""
    class Counted(VideoReader):
        taken = 0

        def __iter__(self):
            for item in super().__iter__():
                self.taken += 1
                yield item

    a = Analyzer(detector_model=yunet, threads=1)
    clip = os.path.join(samples, "facerec_short_hamilton_clip.mp4")
    for live, taken in ((False, 2 * FRAMES_PER_READ + 1), (True, 2)):
        video = Counted(clip, max_frames=20)
        frames = a.iter_video(video, progress=False, live=live)
        index, _, _, faces = next(frames)
        assert index == 0 and faces and video.taken == taken
        frames.close()


def test_larger_frames_are_read_fewer_at_a_time():
    sides = ((480, 640), (720, 1280), (1080, 1920), (2160, 3840))
    assert [frames_per_read(np.empty((h, w, 3), np.uint8)) for h, w in sides] == [FRAMES_PER_READ, FRAMES_PER_READ, 3, 1]
