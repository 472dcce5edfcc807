"""The one label vocabulary: canonical expression names, their aliases, and valence.

Both the torch side and the inference side import this module, so it uses nothing but the
standard library.
"""

from __future__ import annotations

# Output order of every emoscope expression model (alphabetical, as in FER2013's Kaggle folders).
EXPRESSIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
# Contempt is kept when a dataset has it (CK+), appended after the seven basic expressions.
CONTEMPT = "contempt"

# Original FER2013 CSV integer codes.
FER2013_CSV_CODES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

ALIASES: dict[str, str] = {
    "anger": "angry", "angry": "angry", "an": "angry", "mad": "angry",
    "disgust": "disgust", "disgusted": "disgust", "disgusting": "disgust", "di": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear", "fe": "fear",
    "happy": "happy", "happiness": "happy", "joy": "happy", "ha": "happy",
    "neutral": "neutral", "calm": "neutral", "ne": "neutral",
    "sad": "sad", "sadness": "sad", "sa": "sad",
    "surprise": "surprise", "surprised": "surprise", "su": "surprise",
    "contempt": "contempt", "contemptuous": "contempt",
}

# Valence of each expression: +1 positive, -1 negative, 0 neutral. Surprise is ambiguous in the
# literature; we count it as neutral-leaning (0) so it neither inflates nor deflates a score.
VALENCE: dict[str, float] = {
    "happy": 1.0, "neutral": 0.0, "surprise": 0.0,
    "angry": -1.0, "disgust": -1.0, "fear": -1.0, "sad": -1.0, "contempt": -1.0,
}


def canonical_label(name: str) -> str | None:
    """Map a folder or column name to the canonical label, or None if it is not an expression."""
    key = name.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    return ALIASES.get(key)


def valence(probs: dict[str, float], band: float = 0.15) -> tuple[float, str]:
    """Expected valence in [-1, 1] under `probs`, and its class (positive/negative/neutral).

    Classes the table does not know (e.g. a custom model's labels) contribute 0.
    """
    score = sum(p * VALENCE.get(k, 0.0) for k, p in probs.items())
    score = max(-1.0, min(1.0, score))
    label = "positive" if score > band else "negative" if score < -band else "neutral"
    return score, label
