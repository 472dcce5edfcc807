"""The one label vocabulary: canonical expression names, their aliases, and valence.

Both the torch side and the inference side import this module, so it uses nothing but the
standard library.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

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


VALENCE_LABELS = ("negative", "neutral", "positive")


@dataclass(frozen=True)
class ValenceRule:
    """Where the valence score becomes a label: positive above +`positive`, negative below
    -`negative`, neutral in between. A model states its fitted rule in its metadata (`valence`);
    these defaults serve models that state none."""

    positive: float = 0.15
    negative: float = 0.15

    @classmethod
    def from_dict(cls, d: dict | None) -> "ValenceRule":
        d = d or {}
        return cls(float(d.get("positive", cls.positive)), float(d.get("negative", cls.negative)))

    def to_dict(self) -> dict:
        return asdict(self)

    def label(self, score: float) -> str:
        return "positive" if score > self.positive else "negative" if score < -self.negative else "neutral"


def valence_score(probs: dict[str, float]) -> float:
    """Expected valence in [-1, 1] under `probs`; classes the table does not know contribute 0."""
    return max(-1.0, min(1.0, sum(p * VALENCE.get(k, 0.0) for k, p in probs.items())))


def valence(probs: dict[str, float], rule: ValenceRule = ValenceRule()) -> tuple[float, str]:
    """Expected valence under `probs` and its label by `rule`."""
    score = valence_score(probs)
    return score, rule.label(score)


def class_valence(label: str) -> str:
    """The valence label of an expression itself (happy: positive; neutral, surprise: neutral)."""
    v = VALENCE.get(label, 0.0)
    return "positive" if v > 0 else "negative" if v < 0 else "neutral"
