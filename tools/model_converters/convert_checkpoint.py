"""Convert a Twins-PCPVT / Twins-SVT checkpoint to cpvt_mm's parameter names.

Accepts the authors' / timm layout, mmpretrain's and mmsegmentation's, checks the result strictly against the
matching cpvt_mm backbone (names *and* shapes), and only then writes DST, atomically, with a SHA-256 of its
tensors that every cpvt_mm load verifies (:mod:`cpvt_mm.apis.convert`; this file only parses the command line).

Example::

    python tools/model_converters/convert_checkpoint.py twins_svt_small.pth svt-small_cpvt_mm.pth
    # then, in a config:
    # backbone=dict(type='cpvt_mm.SVT', arch='small',
    #               init_cfg=dict(type='Pretrained', checkpoint='svt-small_cpvt_mm.pth', prefix='backbone.'))
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

# importing cpvt_mm applies its compatibility layer and registers the models
from cpvt_mm.apis.convert import ARCHS, ConversionError, convert_checkpoint_file


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="checkpoint to convert (authors'/timm, mmpretrain, mmseg or cpvt_mm layout)")
    parser.add_argument("dst", help="where to write the cpvt_mm checkpoint")
    parser.add_argument("--arch", choices=ARCHS, help="expected architecture (default: inferred from the weights)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = convert_checkpoint_file(args.src, args.dst, args.arch)
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
