"""`emoscope agree`: emoscope against your own human coder(s)."""

from __future__ import annotations

import argparse
import json
import os
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("human", nargs="+", help="human coding(s): ELAN .eaf, a BORIS export (tabular or aggregated "
                                            "events), or a CSV of start_s,end_s,label or time_s,label rows; two or "
                                            "more give Krippendorff's alpha with emoscope placed among the coders")
    p.add_argument("--with", dest="frames", required=True, metavar="FRAMES",
                   help="emoscope's per-frame table of the same video (NAME.frames.csv from `emoscope analyze`)")
    p.add_argument("--person", help="the face_id to compare (default: the largest face of each frame)")
    p.add_argument("--tier", help="the ELAN tier, or BORIS subject or behavioural category, of the human coding")
    p.add_argument("--map", dest="label_map", help="label map: CSV of 'their label,emoscope label' lines or JSON "
                                                   "(e.g. joy,happy; AU12,happy; or labels onto positive/negative/neutral)")
    p.add_argument("--tolerance", type=int, default=5, help="frames within which an event's onset counts as on "
                                                            "time (default 5)")
    p.add_argument("--out", help="folder for agreement.html and agreement.json (default: print the summary only)")


def run(args) -> int:
    from .agree import agreement, align, write_report
    from .segments import CodingError, read_coding, read_frames, read_label_map
    try:
        frames = read_frames(args.frames)
        label_map = read_label_map(args.label_map)
        humans = {}
        for path in args.human:
            name = os.path.splitext(os.path.basename(path))[0]
            while name in humans:
                name += "'"
            humans[name] = read_coding(path, args.tier, label_map)
            if humans[name].attrs.get("unmapped"):
                print(f"note: {path}: labels left uncoded (not in the label map or emoscope's words): "
                      f"{', '.join(humans[name].attrs['unmapped'][:10])}", file=sys.stderr)
        al = align(frames, humans, args.person)
        summary = agreement(al, args.tolerance)
    except CodingError as exc:
        print(f"emoscope agree: {exc}", file=sys.stderr)
        return 1
    if summary["compared"] == 0:
        print("emoscope agree: no frame is coded by both (do the coding and the frame table cover the same video "
              "and times?)", file=sys.stderr)
    if args.out:
        try:
            os.makedirs(args.out, exist_ok=True)
            with open(os.path.join(args.out, "agreement.json"), "w") as f:
                json.dump(summary, f, indent=1)
            summary["report"] = write_report(summary, al, os.path.join(args.out, "agreement.html"))
        except OSError as exc:
            print(f"emoscope agree: cannot write to {args.out} ({exc.strerror or exc})", file=sys.stderr)
            return 1
    print(json.dumps(summary))
    return 0 if summary["compared"] else 1
