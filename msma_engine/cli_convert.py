"""Command line: convert a user's Basel Face Model 2009 into the face-model container.

Two ways in::

    python -m msma_engine convert-bfm --morphable-model 01_MorphableModel.mat \\
        --exp-pca Exp_Pca.bin --bfm-folder BFM/ -o bfm09.npz
    python -m msma_engine convert-bfm --front-mat BFM/BFM_model_front.mat -o bfm09.npz

``--morphable-model`` and ``--exp-pca`` default to the files of those names in
``--bfm-folder`` (Deep3DFaceRecon keeps them there). The same arguments work
without the sub-command name as ``python -m msma_engine.cli_convert ...``.

Exit status: 0 on success; 2 with one line on standard error for bad input
(missing, truncated or wrong-format files, an existing output without ``--force``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from msma_engine.errors import MSMAError
from msma_engine.timing import Stopwatch

__all__ = ["add_convert_bfm_parser", "run_convert_bfm", "main"]

log = logging.getLogger(__name__)

_DESCRIPTION = ("Convert the Basel Face Model 2009 + FaceWarehouse expressions (your own copies) into an "
                "msma face-model .npz with Deep3DFaceRecon's recipe: 35,709 vertices, 80 identity / 64 "
                "expression / 80 albedo components, metres.")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("source (either the original files or a ready BFM_model_front.mat)")
    src.add_argument("--morphable-model", type=Path, metavar="MAT",
                     help="01_MorphableModel.mat (default: BFM_FOLDER/01_MorphableModel.mat)")
    src.add_argument("--exp-pca", type=Path, metavar="BIN",
                     help="Exp_Pca.bin (default: BFM_FOLDER/Exp_Pca.bin)")
    src.add_argument("--bfm-folder", type=Path, metavar="DIR",
                     help="Deep3DFaceRecon's BFM/ folder with BFM_front_idx.mat, BFM_exp_idx.mat, "
                          "facemodel_info.mat and std_exp.txt")
    src.add_argument("--front-mat", type=Path, metavar="MAT",
                     help="Deep3DFaceRecon's BFM_model_front.mat instead of the three above")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="NPZ",
                        help="the face-model file to write (.npz)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")
    parser.add_argument("--uncompressed", action="store_true",
                        help="write an uncompressed .npz (~100 MB; much faster to write)")


def add_convert_bfm_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``convert-bfm`` sub-command to ``subparsers``.

    Args:
        subparsers: what ``ArgumentParser.add_subparsers()`` returned.

    Returns:
        The new sub-parser; its defaults set ``func=run_convert_bfm``.
    """
    parser = subparsers.add_parser("convert-bfm", help="convert BFM09 (+ Exp_Pca.bin) into a face-model .npz",
                                   description=_DESCRIPTION)
    _add_arguments(parser)
    parser.set_defaults(func=run_convert_bfm)
    return parser


def run_convert_bfm(args: argparse.Namespace) -> int:
    """Run the conversion the parsed ``args`` ask for.

    Returns:
        0 on success, 2 on bad input (the reason is printed on one line to stderr).
    """
    from msma_engine import bfm09  # heavy imports only when the command runs

    try:
        originals = (args.morphable_model, args.exp_pca, args.bfm_folder)
        if args.front_mat is not None and any(a is not None for a in originals):
            raise _UsageError("give either --front-mat or --morphable-model/--exp-pca/--bfm-folder, not both")
        if args.front_mat is None and args.bfm_folder is None:
            raise _UsageError("give --bfm-folder (with --morphable-model and --exp-pca) or --front-mat")
        output = bfm09.check_output_path(args.output, args.force)  # fail before a minute of work
        clock = Stopwatch()
        if args.front_mat is not None:
            data = bfm09.convert_front_mat(args.front_mat)
        else:
            data = bfm09.convert_bfm09(args.morphable_model or args.bfm_folder / "01_MorphableModel.mat",
                                       args.exp_pca or args.bfm_folder / "Exp_Pca.bin", args.bfm_folder)
        bfm09.write_face_model(data, output, force=args.force, compress=not args.uncompressed)
    except (MSMAError, _UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size_mb = output.stat().st_size / 1e6
    print(f"wrote {output}: {data.n_vertices} vertices, {data.n_triangles} triangles, "
          f"id/exp/tex {data.n_id}/{data.n_exp}/{data.n_tex}, {size_mb:.1f} MB "
          f"in {clock.elapsed:.1f} s")
    return 0


class _UsageError(Exception):
    """Arguments that parse but do not make sense together."""


def main(argv: list[str] | None = None) -> int:
    """``python -m msma_engine.cli_convert``: the ``convert-bfm`` arguments without the sub-command."""
    parser = argparse.ArgumentParser(prog="python -m msma_engine.cli_convert", description=_DESCRIPTION)
    _add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_convert_bfm(args)


if __name__ == "__main__":
    sys.exit(main())
