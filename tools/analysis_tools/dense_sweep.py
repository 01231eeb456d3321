"""Backbone time and peak memory against input size for cpvt_mm, timm, mmpretrain and mmseg, and a plot.

    python tools/analysis_tools/dense_sweep.py --arch pcpvt-small svt-small --size 224 512 800x1216 \
        --out docs/figures/dense_benchmark

Each (arch, size, mode) is one interleaved benchmark run; see :mod:`cpvt_mm.analysis.dense_sweep`.
"""

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from cpvt_mm.analysis.dense_sweep import main

if __name__ == "__main__":
    main()
