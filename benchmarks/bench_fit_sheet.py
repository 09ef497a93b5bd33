"""A sheet of fits to look at: per photo, the overlay (photo + landmarks, clay over the photo)
and the fitted head clay-shaded from the front, ¾ and profile.

Usage::

    python benchmarks/bench_fit_sheet.py -o /tmp/fit_sheet.png [--lfw 5] [--fit default]

Rows: scikit-image's astronaut, the portraits of ../shared/data/photos, then ``--lfw``
LFW photos (seed 0). The sheet shows research-only photos: write it outside the repository.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fit_targets import faces_dir  # noqa: E402
from sample_photos import SHARED_PHOTOS  # noqa: E402

from msma_engine import reconstruct  # noqa: E402
from msma_engine.errors import MSMAError  # noqa: E402
from msma_engine.image_io import load_image  # noqa: E402
from msma_engine.overlay import clay_views, render_overlay  # noqa: E402

ROW = 256


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--lfw", type=int, default=5)
    p.add_argument("--fit", default="default")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from skimage import data

    photos: list[tuple[str, np.ndarray]] = [("astronaut", data.astronaut())]
    photos += [(q.stem, load_image(q).pixels) for q in sorted(SHARED_PHOTOS.glob("*.jpg"))]
    people = sorted(d for d in (faces_dir() / "lfw").iterdir() if d.is_dir())
    rng = np.random.default_rng(0)
    for i in sorted(rng.choice(len(people), args.lfw, replace=False)):
        q = sorted(people[i].glob("*.jpg"))[0]
        photos.append((q.stem, load_image(q).pixels))
    rows = []
    for name, pixels in photos:
        try:
            res = reconstruct(pixels, fit=args.fit, texture_size=256)
        except MSMAError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            continue
        over = render_overlay(pixels, res, output_size=ROW)
        over = cv2.resize(over, (round(over.shape[1] * ROW / over.shape[0]), ROW))
        row = np.concatenate([over, clay_views(res, ROW)], axis=1)
        on = [f"{n} {w:.2f}" for n, w in zip(res.topology.expression_names, res.expression_weights) if w >= 0.2]
        cv2.putText(row, name[:28], (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1, cv2.LINE_AA)
        for k, text in enumerate(on[:8]):
            cv2.putText(row, text, (over.shape[1] + 6, 36 + 16 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1,
                        cv2.LINE_AA)
        rows.append(row)
        print(name, ", ".join(on) or "(no unit >= 0.2)")
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.output), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.output} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
