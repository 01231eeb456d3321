"""Throughput and peak memory of cpvt_mm vs timm vs mmpretrain (vs mmseg for backbones), in one run.

    python tools/analysis_tools/benchmark.py --arch pcpvt-small --batch-size 8 --size 224
    python tools/analysis_tools/benchmark.py --arch svt-small --mode train --dtype bf16 --device cuda
    python tools/analysis_tools/benchmark.py --arch pcpvt-small --padding --size 800x1216 --batch-size 2
    python tools/analysis_tools/benchmark.py --arch svt-small --backbone --impls cpvt_mm mmseg --size 512

What is timed, how peak memory is read and how the ratios are formed: :mod:`cpvt_mm.analysis.benchmark`.
"""

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from cpvt_mm.analysis.benchmark import main

if __name__ == "__main__":
    main()
