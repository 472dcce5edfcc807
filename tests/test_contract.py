"""The model contract (emoscope.contract): metadata round trip, the face crop rule, normalisation,
and the valence rule with its fitting."""

import json

import numpy as np
import pytest

from emoscope.contract import CropRule, ModelMeta, ModelMetadataError, crop_face, is_onnx_path, normalize_u8
from emoscope.evaluate.calibration import fit_valence, valence_agreement, valence_labels
from emoscope.labels import EXPRESSIONS, ValenceRule, class_valence, valence


def test_metadata_round_trip_and_input_size_forms():
    meta = ModelMeta(list(EXPRESSIONS), (48, 40), "gray", crop=CropRule(0.2, False, True), temperature=0.8,
                     extra={"architecture": "x", "valence": {"positive": 0.2, "negative": 0.3}})
    props = meta.to_props()
    assert all(isinstance(v, str) for v in props.values())
    back = ModelMeta.from_props(props)
    assert back.input_size == (48, 40) and back.crop == CropRule(0.2, False, True)
    assert back.extra["valence"] == {"positive": 0.2, "negative": 0.3} and back.temperature == 0.8
    assert ModelMeta.from_props({**props, "input_size": "64"}).input_size == (64, 64)
    no_crop = {k: v for k, v in props.items() if k != "crop"}
    assert ModelMeta.from_props(no_crop).crop == CropRule()  # one default crop rule, margin 0.1
    with pytest.raises(ModelMetadataError, match="lack color"):
        ModelMeta.from_props({k: v for k, v in props.items() if k != "color"}, "m.onnx")
    assert is_onnx_path("a/B.ONNX") and not is_onnx_path("runs/x")


def test_normalize_u8():
    gray = np.full((2, 4, 4), 255, np.uint8)
    assert normalize_u8(gray).shape == (2, 1, 4, 4) and np.allclose(normalize_u8(gray), 1.0)
    rgb = np.zeros((1, 4, 4, 3), np.uint8)
    out = normalize_u8(rgb, [0.0, 0.5, 1.0], [1.0, 0.5, 0.5])
    assert out.shape == (1, 3, 4, 4) and np.allclose(out[0, :, 0, 0], [0.0, -1.0, -2.0])


def _pattern(h=100, w=120):
    yy, xx = np.mgrid[0:h, 0:w]
    return ((xx * 2 + yy) % 256).astype(np.uint8)


def test_crop_margin_square_and_border():
    img = _pattern()
    # a 20x20 box with no margin is exactly that patch, resized to 20x20
    out = crop_face(img, (30, 40, 20, 20), (20, 20), "gray", CropRule(0.0, True, False))
    assert np.array_equal(out, img[40:60, 30:50])
    # margin 0.5 on each side doubles the side around the same centre
    out = crop_face(img, (30, 40, 20, 20), (40, 40), "gray", CropRule(0.5, True, False))
    assert np.array_equal(out, img[30:70, 20:60])
    # square: a 10-wide, 20-high box becomes 20x20 around its centre; not square: stretched
    sq = crop_face(img, (35, 40, 10, 20), (20, 20), "gray", CropRule(0.0, True, False))
    assert np.array_equal(sq, img[40:60, 30:50])
    stretched = crop_face(img, (35, 40, 10, 20), (20, 20), "gray", CropRule(0.0, False, False))
    assert stretched.shape == (20, 20) and not np.array_equal(stretched, sq)
    # a box over the edge repeats the border instead of failing
    edge = crop_face(img, (-10, -10, 20, 20), (20, 20), "gray", CropRule(0.0, True, False))
    assert edge.shape == (20, 20) and (edge[:10, :10] == img[0, 0]).all()


def test_crop_colour_equalise_and_align():
    bgr = np.zeros((60, 60, 3), np.uint8)
    bgr[..., 2] = 200  # red in BGR
    rgb = crop_face(bgr, (10, 10, 40, 40), (16, 16), "rgb", CropRule())
    assert rgb.shape == (16, 16, 3) and (rgb[..., 0] == 200).all() and (rgb[..., 2] == 0).all()
    low = (_pattern() // 4).astype(np.uint8)
    eq = crop_face(low, (20, 20, 60, 60), (48, 48), "gray", CropRule(0.0, True, True))
    assert eq.max() == 255 and eq.min() == 0
    # align: eyes at different heights rotate the crop; level eyes give the plain crop
    img = _pattern()
    level = np.array([[40, 50], [60, 50]], np.float32)
    assert np.array_equal(crop_face(img, (30, 30, 40, 40), (40, 40), "gray", CropRule(0.0), level, align=True),
                          crop_face(img, (30, 30, 40, 40), (40, 40), "gray", CropRule(0.0)))
    tilted = np.array([[40, 45], [60, 55]], np.float32)
    assert not np.array_equal(crop_face(img, (30, 30, 40, 40), (40, 40), "gray", CropRule(0.0), tilted, align=True),
                              crop_face(img, (30, 30, 40, 40), (40, 40), "gray", CropRule(0.0)))


def test_valence_rule_edges():
    default = ValenceRule()
    # the case from the field: neutral on top at 0.78, 0.19 of negative mass
    probs = {"neutral": 0.78, "angry": 0.10, "sad": 0.09, "happy": 0.03}
    score, label = valence(probs, default)
    assert score == pytest.approx(-0.16) and label == "negative"
    assert valence(probs, ValenceRule(0.15, 0.25)) == (pytest.approx(-0.16), "neutral")
    # exactly at a threshold stays neutral; past it flips
    assert ValenceRule(0.2, 0.2).label(0.2) == "neutral" and ValenceRule(0.2, 0.2).label(0.2001) == "positive"
    assert ValenceRule(0.2, 0.2).label(-0.2) == "neutral" and ValenceRule(0.2, 0.2).label(-0.2001) == "negative"
    assert valence({"happy": 1.0}, ValenceRule(0.6, 0.6))[1] == "positive"
    assert valence({"sad": 1.5}) == (-1.0, "negative")  # the score is clipped to [-1, 1]
    assert ValenceRule.from_dict(None) == default and ValenceRule.from_dict({"negative": 0.3}).positive == 0.15
    assert [class_valence(c) for c in ("happy", "surprise", "neutral", "disgust")] == \
        ["positive", "neutral", "neutral", "negative"]


def test_fit_valence_learns_that_a_tail_of_negative_mass_is_neutral():
    classes = list(EXPRESSIONS)
    rng = np.random.default_rng(0)
    rows, labels = [], []
    for _ in range(200):  # true neutral faces carry 0.2-0.35 of negative mass
        neg = rng.uniform(0.2, 0.35)
        p = np.zeros(7)
        p[classes.index("neutral")], p[classes.index("sad")] = 1 - neg, neg
        rows.append(p)
        labels.append(classes.index("neutral"))
    for _ in range(50):  # true sad faces are clearly negative
        p = np.zeros(7)
        neg = rng.uniform(0.6, 1.0)
        p[classes.index("sad")], p[classes.index("neutral")] = neg, 1 - neg
        rows.append(p)
        labels.append(classes.index("sad"))
    probs, labels = np.array(rows), np.array(labels)
    rule = fit_valence(probs, labels, classes)
    assert 0.35 <= rule.negative < 0.6
    scores = -probs[:, classes.index("sad")]
    truth = [class_valence(classes[i]) for i in labels]
    fitted = valence_agreement(valence_labels(scores, rule), truth)
    assert fitted["balanced"] == 1.0
    assert valence_agreement(valence_labels(scores, ValenceRule()), truth)["per_valence"]["neutral"] < 0.1
    assert json.loads(json.dumps(rule.to_dict())) == rule.to_dict()


def synthetic_faces(n: int, seed: int):
    """Faces of 3 classes whose image model cannot tell class 2 from class 0, while blendshape 5 can."""
    from emoscope.mesh import BLENDSHAPES
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    blend = rng.uniform(0, 0.3, (n, len(BLENDSHAPES)))
    blend[y == 2, 5] += 0.5
    probs = np.full((n, 3), 0.1)
    probs[np.arange(n), np.where(y == 2, 0, y)] = 0.8
    return probs, blend, y


def test_blendshape_expert_is_fitted_where_it_helps_and_travels_in_the_metadata():
    pytest.importorskip("sklearn")
    from emoscope.contract import BlendshapeExpert
    from emoscope.evaluate.expert import fit_expert
    from emoscope.metrics import balanced_accuracy
    classes = ["angry", "happy", "sad"]
    _, blend_fit, y_fit = synthetic_faces(300, 0)
    probs, blend, y = synthetic_faces(200, 1)
    expert = fit_expert(blend_fit, y_fit, probs, blend, y, classes)
    assert expert.weight > 0 and expert.temperature > 0 and set(expert.valence) == {"positive", "negative"}
    assert expert.fitted["balanced_image"] < 0.7 < expert.fitted["balanced_fused"]
    probs_t, blend_t, y_t = synthetic_faces(200, 2)
    fused = expert.fuse(probs_t, blend_t)
    assert np.allclose(fused.sum(1), 1, atol=1e-5)
    assert balanced_accuracy(y_t, fused.argmax(1), 3) > balanced_accuracy(y_t, probs_t.argmax(1), 3) + 0.2
    meta = ModelMeta(classes, extra={BlendshapeExpert.KEY: expert.to_dict()})
    again = ModelMeta.from_props(meta.to_props()).blendshape_expert
    assert again.weight == expert.weight and np.allclose(again.fuse(probs_t, blend_t), fused, atol=1e-4)
    assert ModelMeta(classes).blendshape_expert is None
    # weight 0 and temperature 1 leave the image model's probabilities as they were
    plain = BlendshapeExpert(expert.mean, expert.scale, expert.coef, expert.intercept, 0.0)
    assert np.allclose(plain.fuse(probs_t, blend_t), probs_t / probs_t.sum(1, keepdims=True), atol=1e-6)


def test_blendshape_expert_without_a_class_to_fit_is_refused_in_plain_words():
    pytest.importorskip("sklearn")
    from emoscope.evaluate.expert import fit_expert
    probs, blend, y = synthetic_faces(100, 0)
    keep = y != 2
    with pytest.raises(ValueError, match="have no sad"):
        fit_expert(blend[keep], y[keep], probs, blend, y, ["angry", "happy", "sad"])
