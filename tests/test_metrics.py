import numpy as np
import pytest
from sklearn import metrics as skm

from emoscope import metrics
from emoscope.evaluate.calibration import fit_temperature, reliability


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_sklearn_on_random_predictions(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 7, 500)
    p = np.where(rng.random(500) < 0.6, y, rng.integers(0, 7, 500))
    if seed == 2:
        p[p == 1] = 0  # a class never predicted: precision 0 by convention
    s = metrics.summary(y, p, 7)
    assert s["accuracy"] == pytest.approx(skm.accuracy_score(y, p))
    assert s["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p))
    assert s["macro_f1"] == pytest.approx(skm.f1_score(y, p, average="macro", zero_division=0))
    assert s["weighted_f1"] == pytest.approx(skm.f1_score(y, p, average="weighted", zero_division=0))
    pc = metrics.per_class(metrics.confusion_matrix(y, p, 7))
    assert np.allclose(pc["precision"], skm.precision_score(y, p, average=None, labels=range(7), zero_division=0))
    assert np.allclose(pc["recall"], skm.recall_score(y, p, average=None, labels=range(7), zero_division=0))
    assert np.array_equal(metrics.confusion_matrix(y, p, 7), skm.confusion_matrix(y, p, labels=range(7)))


def test_ece_on_hand_made_cases():
    probs = np.array([[0.9, 0.1]] * 10)
    labels = np.array([0] * 9 + [1])
    assert reliability(probs, labels)["ece"] == pytest.approx(0.0)   # 90% confident, 90% right
    labels = np.array([0] * 5 + [1] * 5)
    assert reliability(probs, labels)["ece"] == pytest.approx(0.4)   # 90% confident, 50% right


def test_temperature_recovers_overconfidence():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 4000)
    logits = rng.normal(0, 1, (4000, 3))
    logits[np.arange(4000), y] += 1.0
    t = fit_temperature(logits * 3.0, y)   # logits inflated 3x: the fitted T should undo it
    assert t == pytest.approx(3.0, rel=0.15)


def test_roc_auc_matches_sklearn_and_hand_cases():
    from emoscope.evaluate.metrics_report import roc_curve, score
    fpr, tpr, auc = roc_curve(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 1, 0, 0]))
    assert auc == pytest.approx(1.0)
    assert roc_curve(np.array([0.1, 0.2, 0.8, 0.9]), np.array([1, 1, 0, 0]))[2] == pytest.approx(0.0)
    assert roc_curve(np.array([0.5, 0.5, 0.5, 0.5]), np.array([1, 0, 1, 0]))[2] == pytest.approx(0.5)  # ties
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    probs = rng.dirichlet(np.ones(4), 300)
    probs[np.arange(300), y] += 0.3
    probs /= probs.sum(1, keepdims=True)
    r = score(probs, y, ["a", "b", "c", "d"])
    for i, c in enumerate("abcd"):
        assert r["per_class"][c]["auc"] == pytest.approx(skm.roc_auc_score(y == i, probs[:, i]))
    assert r["top2_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, probs, k=2))


def test_label_mapping_excludes_classes_the_model_lacks():
    from emoscope.evaluate.metrics_report import label_mapping
    model = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    data = ["anger", "contempt", "happiness", "sadness"]
    mapping, missing = label_mapping(model, data)
    assert mapping == {0: 0, 2: 3, 3: 5} and missing == ["contempt"]


@pytest.mark.parametrize("seed", [0, 1])
def test_resampled_summary_of_the_samples_themselves_is_the_summary(seed):
    """The bootstrap's per-resample metrics, on the draw that takes every sample once, are exactly
    `summary`'s (and the pipeline's macro-F1, where a missed face counts against its class)."""
    from emoscope.evaluate.pipeline import macro_f1
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, 300)
    p = np.where(rng.random(300) < 0.6, y, rng.integers(0, 5, 300))
    same, full = metrics.resampled_summary(y, p, 5, np.arange(300)[None]), metrics.summary(y, p, 5)
    for name in ("accuracy", "balanced_accuracy", "macro_f1"):
        assert same[name][0] == pytest.approx(full[name])
    p[rng.random(300) < 0.1] = 5  # no face found
    same = metrics.resampled_summary(y, p, 5, np.arange(300)[None])
    cm = np.zeros((5, 6), np.int64)
    np.add.at(cm, (y, p), 1)
    assert same["macro_f1"][0] == pytest.approx(macro_f1(cm, 5))
    assert same["balanced_accuracy"][0] == pytest.approx((np.diag(cm[:, :5]) / cm.sum(1)).mean())
    assert same["accuracy"][0] == pytest.approx((p == y).mean())
    exact = metrics.resampled_summary(y, y, 5, np.arange(300)[None])
    assert all(v[0] == 1.0 for v in exact.values())


def test_bootstrap_intervals_hold_the_estimate_and_narrow_with_more_samples():
    rng = np.random.default_rng(0)
    widths = []
    for n in (200, 3200):
        y = rng.integers(0, 4, n)
        p = np.where(rng.random(n) < 0.7, y, rng.integers(0, 4, n))
        iv = metrics.bootstrap_intervals(y, p, 4)
        point = metrics.summary(y, p, 4)
        for name in ("accuracy", "balanced_accuracy", "macro_f1"):
            assert iv[name][0] <= point[name] <= iv[name][1]
        widths.append(iv["macro_f1"][1] - iv["macro_f1"][0])
        assert iv == metrics.bootstrap_intervals(y, p, 4)  # seeded
    assert widths[1] < widths[0] / 2
    assert metrics.bootstrap_intervals(np.zeros(0, int), np.zeros(0, int), 4) == {}


def test_paired_differences_are_exact_and_narrower_than_two_separate_intervals():
    """The difference is the two summaries' difference; a model against itself differs by exactly
    0; two models that mostly agree get a paired interval far narrower than their own intervals,
    and one clearly better than the other an interval above 0."""
    rng = np.random.default_rng(0)
    n = 1000
    y = rng.integers(0, 4, n)
    a = np.where(rng.random(n) < 0.7, y, rng.integers(0, 4, n))
    b = a.copy()
    b[rng.random(n) < 0.05] = 4  # b misses 5% more (no face found)
    d = metrics.paired_differences(y, a, b, 4)
    for name in ("accuracy", "balanced_accuracy", "macro_f1"):
        expected = metrics.resampled_summary(y, a, 4, np.arange(n)[None])[name][0] - \
            metrics.resampled_summary(y, b, 4, np.arange(n)[None])[name][0]
        assert d[name]["difference"] == pytest.approx(expected, abs=1e-4) and d[name]["difference"] > 0
        assert 0 < d[name]["interval"][0] <= d[name]["difference"] <= d[name]["interval"][1]
    alone = metrics.bootstrap_intervals(y, a, 4)["accuracy"]
    paired = d["accuracy"]["interval"]
    assert paired[1] - paired[0] < (alone[1] - alone[0]) / 2
    assert all(v == {"difference": 0.0, "interval": [0.0, 0.0]} for v in metrics.paired_differences(y, a, a, 4).values())
    assert metrics.paired_differences(np.zeros(0, int), np.zeros(0, int), np.zeros(0, int), 4) == {}


def test_grouped_draws_take_whole_groups_and_widen_the_intervals_of_a_class_held_by_one_group():
    """With groups (the person in each photo) a draw takes whole groups, as many as there are; a
    class whose photos all show one person has a far wider interval than photo by photo, where its
    50 photos looked like 50 independent faces; paired differences draw the same groups."""
    groups = np.repeat(np.arange(60), 5)  # 60 people, 5 photos each
    for draw in metrics.resample_draws(300, 20, seed=0, groups=groups):
        people, counts = np.unique(groups[draw], return_counts=True)
        assert (counts % 5 == 0).all() and counts.sum() == len(draw)
        for person in people:  # each drawn person brings each of their photos equally often
            assert len(set(np.bincount(draw[groups[draw] == person]).tolist()) - {0}) == 1
    rng = np.random.default_rng(0)
    y = np.where(groups < 10, 1, 0)  # class 1: the photos of 10 people...
    p = np.where(rng.random(300) < 0.8, y, 1 - y)
    p[groups == 0] = 0  # ...one of whom the model never reads
    photos, people = metrics.bootstrap_intervals(y, p, 2), metrics.bootstrap_intervals(y, p, 2, groups=groups)
    width = {k: [v[1] - v[0] for v in (photos[k], people[k])] for k in photos}
    assert all(w[1] > w[0] for w in width.values()), width
    assert people == metrics.bootstrap_intervals(y, p, 2, groups=groups)  # seeded
    d = metrics.paired_differences(y, p, y, 2, groups=groups)["accuracy"]
    assert d["difference"] == pytest.approx((p == y).mean() - 1, abs=1e-4) and d["interval"][1] < 0
