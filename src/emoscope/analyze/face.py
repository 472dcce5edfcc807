"""The result type of the analyzer: one detected face with its expression and valence."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace


@dataclass
class Face:
    box: tuple[int, int, int, int]              # x, y, w, h in pixels of the input image
    label: str                                  # most probable expression
    probs: dict[str, float]                     # calibrated probabilities, sum to 1
    score: float                                # detector confidence
    valence: str                                # positive / negative / neutral
    valence_score: float                        # expected valence in [-1, 1]
    landmarks: list[list[float]] | None = None  # 5 points (eyes, nose, mouth corners) when the detector gives them
    track_id: int | None = None                 # stable per-person id in videos
    gender: dict[str, float] | None = field(default=None)  # only when asked for

    @property
    def confidence(self) -> float:
        return self.probs[self.label]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["box"] = list(d["box"])
        return {k: v for k, v in d.items() if v is not None}

    def scaled(self, factor: float) -> "Face":
        """The same face with its box and landmarks in an image `factor` times larger (e.g. back
        to the original pixels of an image that was analysed downscaled)."""
        if factor == 1:
            return self
        box = tuple(int(round(v * factor)) for v in self.box)
        lms = [[round(x * factor, 1), round(y * factor, 1)] for x, y in self.landmarks] if self.landmarks else None
        return replace(self, box=box, landmarks=lms)
