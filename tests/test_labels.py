import pytest

from emoscope.labels import EXPRESSIONS, canonical_label, valence


@pytest.mark.parametrize("name,expected", [
    ("anger", "angry"), ("Angry", "angry"), ("happiness", "happy"), ("sadness", "sad"), ("disgusted", "disgust"),
    ("fearful", "fear"), ("surprised", "surprise"), ("Neutral", "neutral"), ("contempt", "contempt"),
    ("man", None), ("cat", None),
])
def test_aliases(name, expected):
    assert canonical_label(name) == expected


def test_vocabulary_order_is_alphabetical_like_the_kaggle_folders():
    assert list(EXPRESSIONS) == sorted(EXPRESSIONS)
    assert len(EXPRESSIONS) == 7


def test_valence():
    assert valence({"happy": 1.0})[1] == "positive"
    assert valence({"sad": 0.6, "angry": 0.4}) == (-1.0, "negative")
    score, label = valence({"happy": 0.5, "sad": 0.5})
    assert score == 0 and label == "neutral"
    assert valence({"man": 1.0}) == (0.0, "neutral")
