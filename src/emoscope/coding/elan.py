"""ELAN Annotation Format (EAF 3.0): write emoscope's coding as tiers ELAN opens (one expression
tier and one valence tier per person, time-aligned annotations, controlled vocabularies, the
media file linked), and read one tier of a coder's `.eaf` back as segments."""

from __future__ import annotations

import mimetypes
import os
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

import pandas as pd

from ..labels import EXPRESSIONS, VALENCE_LABELS
from .segments import SEGMENT_COLUMNS, UNREADABLE, CodingError

EAF_SCHEMA = "http://www.mpi.nl/tools/elan/EAFv3.0.xsd"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
# ELAN's four constraint stereotypes, declared in every EAF file it writes
CONSTRAINTS = (
    ("Time_Subdivision", "Time subdivision of parent annotation's time interval, no time gaps allowed within this interval"),
    ("Symbolic_Subdivision", "Symbolic subdivision of a parent annotation. Annotations refering to the same parent are ordered"),
    ("Symbolic_Association", "1-1 association with a parent annotation"),
    ("Included_In", "Time alignable annotations within the parent annotation's time interval, gaps are allowed"),
)
TIERS = {"expression": ("expressions", (*EXPRESSIONS, UNREADABLE)), "valence": ("valences", (*VALENCE_LABELS, UNREADABLE))}


def write_eaf(tiers: dict[str, dict[str, pd.DataFrame]], media: str, path: str) -> str:
    """`tiers`: {"expression": segments, "valence": segments} (SEGMENT_COLUMNS; person ids); one
    tier per person and kind, named "person N expression" / "person N valence"."""
    root = ET.Element("ANNOTATION_DOCUMENT", {
        "AUTHOR": "emoscope", "DATE": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
        "FORMAT": "3.0", "VERSION": "3.0", f"{{{XSI}}}noNamespaceSchemaLocation": EAF_SCHEMA})
    header = ET.SubElement(root, "HEADER", {"MEDIA_FILE": "", "TIME_UNITS": "milliseconds"})
    ET.SubElement(header, "MEDIA_DESCRIPTOR", {
        "MEDIA_URL": "file://" + os.path.abspath(media), "MIME_TYPE": mimetypes.guess_type(media)[0] or "video/mp4",
        "RELATIVE_MEDIA_URL": "./" + os.path.basename(media)})
    order = ET.SubElement(root, "TIME_ORDER")
    ms = lambda seconds: int(round(seconds * 1000))  # noqa: E731
    times = sorted({ms(t) for seg in tiers.values() for t in (*seg["start_s"], *seg["end_s"])})
    slots = {t: f"ts{i + 1}" for i, t in enumerate(times)}  # numbered in time order, as ELAN writes them
    for t, sid in slots.items():
        ET.SubElement(order, "TIME_SLOT", {"TIME_SLOT_ID": sid, "TIME_VALUE": str(t)})

    annotation = 0
    tier_elements = []
    for kind, by_person in tiers.items():
        for person, seg in sorted(by_person.groupby("person"), key=lambda kv: _person_key(kv[0])):
            tier = ET.Element("TIER", {"TIER_ID": f"person {person} {kind}", "PARTICIPANT": f"person {person}",
                                       "ANNOTATOR": "emoscope", "LINGUISTIC_TYPE_REF": kind})
            for s, e, lab in zip(seg["start_s"], seg["end_s"], seg["label"]):
                annotation += 1
                a = ET.SubElement(ET.SubElement(tier, "ANNOTATION"), "ALIGNABLE_ANNOTATION", {
                    "ANNOTATION_ID": f"a{annotation}", "TIME_SLOT_REF1": slots[ms(s)], "TIME_SLOT_REF2": slots[ms(e)]})
                ET.SubElement(a, "ANNOTATION_VALUE").text = str(lab)
            tier_elements.append(tier)
    ET.SubElement(header, "PROPERTY", {"NAME": "lastUsedAnnotationId"}).text = str(annotation)
    root.extend(tier_elements)
    for kind in tiers:
        ET.SubElement(root, "LINGUISTIC_TYPE", {"LINGUISTIC_TYPE_ID": kind, "TIME_ALIGNABLE": "true",
                                                "GRAPHIC_REFERENCES": "false", "CONTROLLED_VOCABULARY_REF": TIERS[kind][0]})
    ET.SubElement(root, "LANGUAGE", {"LANG_ID": "eng", "LANG_LABEL": "English (eng)"})
    for stereotype, description in CONSTRAINTS:
        ET.SubElement(root, "CONSTRAINT", {"STEREOTYPE": stereotype, "DESCRIPTION": description})
    for kind in tiers:
        cv_id, values = TIERS[kind]
        cv = ET.SubElement(root, "CONTROLLED_VOCABULARY", {"CV_ID": cv_id})
        ET.SubElement(cv, "DESCRIPTION", {"LANG_REF": "eng"}).text = f"emoscope {kind} labels"
        for i, v in enumerate(values):
            entry = ET.SubElement(cv, "CV_ENTRY_ML", {"CVE_ID": f"{cv_id}-{i}"})
            ET.SubElement(entry, "CVE_VALUE", {"LANG_REF": "eng"}).text = v
    ET.indent(root)
    tmp = path + ".tmp"
    ET.ElementTree(root).write(tmp, encoding="UTF-8", xml_declaration=True)
    os.replace(tmp, path)
    return path


def _person_key(person: str):
    return (0, int(person)) if str(person).isdigit() else (1, str(person))


def eaf_tiers(root: ET.Element) -> list[str]:
    return [t.get("TIER_ID", "") for t in root.iter("TIER")]


def read_eaf(path: str, tier: str | None = None) -> pd.DataFrame:
    """One tier of an ELAN file as segments (person = the tier id). Without `tier` the file must
    have one tier, or one whose name ends in "expression"."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise CodingError(f"{path} is not a readable ELAN file ({exc})") from None
    if root.tag != "ANNOTATION_DOCUMENT":
        raise CodingError(f"{path} is not an ELAN file (its root element is {root.tag})")
    names = eaf_tiers(root)
    if tier is None:
        chosen = names if len(names) == 1 else [n for n in names if n.endswith("expression")]
        if len(chosen) != 1:
            raise CodingError(f"{path} has {len(names)} tiers; choose one with --tier ({', '.join(names[:12])})")
        tier = chosen[0]
    elif tier not in names:
        raise CodingError(f"{path} has no tier {tier!r} (tiers: {', '.join(names[:12])})")
    times = {s.get("TIME_SLOT_ID"): s.get("TIME_VALUE") for s in root.iter("TIME_SLOT")}
    spans: dict[str, tuple[float, float]] = {}
    for a in root.iter("ALIGNABLE_ANNOTATION"):
        t1, t2 = times.get(a.get("TIME_SLOT_REF1")), times.get(a.get("TIME_SLOT_REF2"))
        if t1 is not None and t2 is not None:
            spans[a.get("ANNOTATION_ID")] = (int(t1) / 1000, int(t2) / 1000)
    node = next(t for t in root.iter("TIER") if t.get("TIER_ID") == tier)
    rows = []
    for a in node.iter():
        if a.tag == "ALIGNABLE_ANNOTATION":
            span = spans.get(a.get("ANNOTATION_ID"))
        elif a.tag == "REF_ANNOTATION":  # a symbolic child takes its parent's time
            span = spans.get(a.get("ANNOTATION_REF"))
        else:
            continue
        if span is not None and span[1] > span[0]:
            rows.append((tier, *span, (a.findtext("ANNOTATION_VALUE") or "").strip()))
    if not rows:
        raise CodingError(f"{path}: tier {tier!r} has no time-aligned annotation")
    return pd.DataFrame(rows, columns=SEGMENT_COLUMNS)
