"""FER+ labels for FER2013: the ten crowd votes per image (Barsoum et al. 2016, Microsoft, MIT).

The votes file has one row per FER2013 image: `file` (the path inside `fer2013.zip`), `fer_row`
(the row of the original `fer2013.csv`), and the vote counts of ten annotators over
`neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF`.

Two ways to read them:
- **Majority rule** (FER+'s evaluation labels): drop single votes, then the top emotion needs
  more than half of the remaining votes. Images whose majority is `unknown` or `NF` (not a face)
  get no label, and neither do images without a majority.
- **Soft targets** (training): the distribution of the votes over the model's classes, single
  votes dropped when anything is left. Images whose `unknown` + `NF` votes outnumber the emotion
  votes are not faces to learn from.

Contempt (about 0.6% of the majority labels) is folded out for a seven-class model: its votes
are dropped from the soft targets and images whose majority is contempt get no label; an
eight-class model (classes that include contempt) keeps it.
"""

from __future__ import annotations

import csv
import os

import numpy as np

# The votes file's columns, in order, and the emoscope class each emotion column names.
VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                "unknown", "NF")
EMOTION_CLASS = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad",
                 "anger": "angry", "disgust": "disgust", "fear": "fear", "contempt": "contempt"}
NOT_A_FACE = ("unknown", "NF")


class VotesError(ValueError):
    """The votes file cannot be read or does not fit the dataset."""


def read_votes(path: str) -> tuple[dict[str, int], dict[int, int], np.ndarray]:
    """The votes file as (file -> row, fer_row -> row, votes (N, 10) int)."""
    if not os.path.exists(path):
        raise VotesError(f"FER+ votes file {path} not found")
    by_file, by_row, votes = {}, {}, []
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("file", *VOTE_COLUMNS) if c not in (reader.fieldnames or [])]
        if missing:
            raise VotesError(f"{path} is not a FER+ votes file: no column {', '.join(missing)}")
        for i, row in enumerate(reader):
            try:
                votes.append([int(row[c]) for c in VOTE_COLUMNS])
            except (TypeError, ValueError):
                raise VotesError(f"{path}, line {i + 2}: vote counts must be whole numbers") from None
            by_file[row["file"]] = i
            if row.get("fer_row", "").strip().isdigit():
                by_row[int(row["fer_row"])] = i
    return by_file, by_row, np.array(votes, np.int64).reshape(-1, len(VOTE_COLUMNS))


def _class_columns(classes: list[str]) -> list[int]:
    """For each class, its column in the votes (-1 when FER+ has no such emotion)."""
    column = {EMOTION_CLASS[c]: i for i, c in enumerate(VOTE_COLUMNS) if c in EMOTION_CLASS}
    return [column.get(c, -1) for c in classes]


def _drop_single_votes(votes: np.ndarray) -> np.ndarray:
    """Votes with counts of one set to zero, row by row where something is left."""
    kept = np.where(votes > 1, votes, 0)
    return np.where(kept.sum(1, keepdims=True) > 0, kept, votes)


def majority_labels(votes: np.ndarray, classes: list[str]) -> np.ndarray:
    """FER+'s majority rule: index into `classes`, or -1 (no majority, not a face, or a class the
    model lacks)."""
    kept = np.where(votes > 1, votes, 0)
    top = kept.argmax(1)
    has_majority = kept[np.arange(len(kept)), top] * 2 > kept.sum(1)
    index = {col: k for k, col in enumerate(_class_columns(classes)) if col >= 0}
    return np.array([index.get(int(t), -1) if ok else -1 for t, ok in zip(top, has_majority)], np.int64)


def soft_targets(votes: np.ndarray, classes: list[str], own: np.ndarray | None = None,
                 own_votes: float = 0.0, neutral_weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(targets (N, C) float32 summing to 1, usable (N,) bool): the vote distribution over
    `classes` after dropping single votes; an image is usable when it has emotion votes in
    `classes` and they outnumber its `unknown` + `NF` votes.

    With `own` (each image's FER2013 label, an index into `classes`) and `own_votes` > 0, that
    single annotator's label joins the distribution as `own_votes` more votes: FER+'s majority
    reads many subtle expressions as neutral that single annotators (and in-the-wild collections)
    call angry, sad or afraid, and this keeps part of what they see.

    `neutral_weight` < 1 counts each FER+ neutral vote as that much of a vote: a lower neutral
    share in the targets, the other way to narrow FER+'s neutral boundary. An image whose only
    votes are neutral keeps a neutral target."""
    if neutral_weight <= 0:
        raise ValueError(f"a neutral vote must count for more than nothing (got {neutral_weight})")
    kept = _drop_single_votes(votes)
    cols = _class_columns(classes)
    emotion = np.stack([kept[:, c] if c >= 0 else np.zeros(len(kept), np.int64) for c in cols], 1).astype(np.float64)
    not_face = kept[:, [VOTE_COLUMNS.index(c) for c in NOT_A_FACE]].sum(1)
    usable = (emotion.sum(1) > 0) & (emotion.sum(1) > not_face)
    if neutral_weight != 1.0 and "neutral" in classes:
        emotion[:, classes.index("neutral")] *= neutral_weight
    if own is not None and own_votes > 0:
        emotion = emotion + own_votes * np.eye(len(classes))[own]
    total = emotion.sum(1)
    targets = emotion / np.maximum(total, 1e-9)[:, None]
    return targets.astype(np.float32), usable


def votes_for(ids: np.ndarray, path: str) -> np.ndarray:
    """The votes of each sample id (a path inside the FER2013 zip or folder, or `fer2013.csv:ROW`
    for the CSV layout); rows of -1 where FER+ has no votes for the image."""
    by_file, by_row, votes = read_votes(path)
    out = np.full((len(ids), len(VOTE_COLUMNS)), -1, np.int64)
    for k, sid in enumerate(ids.tolist()):
        row = by_file.get(sid)
        if row is None and ":" in sid and sid.rsplit(":", 1)[1].isdigit():
            row = by_row.get(int(sid.rsplit(":", 1)[1]) - 2)  # the CSV's data rows start on line 2
        if row is not None:
            out[k] = votes[row]
    if (out[:, 0] >= 0).sum() == 0:
        raise VotesError(f"no image of the dataset is in {path}: its `file` column must be the path "
                         f"inside fer2013.zip (e.g. fer2013/test/angry/PrivateTest_10131363.jpg)")
    return out
