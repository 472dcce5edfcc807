"""One visual language: the colours and time format every report, chart, page and annotated video
uses come from `emoscope.presentation`."""

from __future__ import annotations

import json

import numpy as np

from emoscope import presentation as P
from emoscope.analyze.annotate import draw_faces
from emoscope.analyze.face import Face


def test_person_colours_cannot_be_taken_for_an_expression_or_a_valence():
    others = [P.rgb(c) for c in (*P.EXPRESSION_COLORS.values(), *P.VALENCE_COLORS.values())]
    for person in P.PERSON_COLORS:
        nearest = min(np.linalg.norm(np.subtract(P.rgb(person), o)) for o in others)
        assert nearest > 60, (person, nearest)
    assert len(set(P.PERSON_COLORS)) == len(P.PERSON_COLORS)


def test_one_time_format():
    assert P.clock(6.84) == "0:06" and P.clock(6.84, tenths=True) == "0:06.8"
    assert P.clock(125) == "2:05" and P.clock(float("nan")) == "–"
    assert P.share(0.4249) == "42%" and P.share(None) == "–" and P.count(1, "viewer") == "1 viewer"
    assert P.count(1204, "viewer") == "1,204 viewers"


def test_shares_with_their_interval():
    assert P.share_with_interval(0.5204, [0.4612, 0.5791]) == "52% (46–58%)"
    assert P.share_with_interval(0.5204) == "52%" and P.share_with_interval(None, [0.1, 0.2]) == "–"


def test_annotated_boxes_take_the_expression_colour_the_page_uses():
    img = np.zeros((200, 200, 3), np.uint8)
    face = Face((50, 50, 80, 80), "happy", {"happy": 0.9, "neutral": 0.1}, 0.9, "positive", 0.9)
    out = draw_faces(img, [face], bars=False)
    assert tuple(int(v) for v in out[90, 50]) == P.bgr(P.EXPRESSION_COLORS["happy"])  # the box's left edge
    unreadable = Face((50, 50, 80, 80), "happy", {"happy": 0.9, "neutral": 0.1}, 0.9, "positive", 0.9,
                      readable=False, unreadable="too dark")
    out = draw_faces(img, [unreadable], bars=False)
    assert tuple(int(v) for v in out[90, 50]) == P.bgr(P.UNREADABLE_COLOR)


def test_the_page_reads_the_same_values():
    js = P.javascript()
    served = json.loads(js[js.index("=") + 1:].rstrip(";\n"))
    assert served["expression"] == P.EXPRESSION_COLORS and served["persons"] == P.PERSON_COLORS
