"""The complexity counter (issue 12): the papers' MACs at 224, attention counted on CPU, the tool's table."""

import json

import pytest
import torch
from helpers import ROOT, run_tool, run_tool_in_process
from toy import TINY_SVT

from cpvt_mm.analysis import count_complexity, mfu
from cpvt_mm.models import CPVT, PCPVT, SVT, set_fused_attn

# (model, arch, GMACs at 224x224 in the papers: Twins Table 1/2, CPVT Table 1 = DeiT's)
PAPER_GMACS = [
    (PCPVT, "small", 3.8),
    (PCPVT, "base", 6.7),
    (PCPVT, "large", 9.8),
    (SVT, "small", 2.9),
    (SVT, "base", 8.6),
    (SVT, "large", 15.1),
    (CPVT, "tiny", 1.3),
    (CPVT, "small", 4.6),
]


@pytest.mark.parametrize("cls, arch, gmacs", PAPER_GMACS, ids=[f"{c.__name__}-{a}" for c, a, _ in PAPER_GMACS])
def test_macs_at_224_match_the_papers(cls, arch, gmacs):
    with torch.device("meta"):
        model = cls(arch=arch)
    c = count_complexity(model, (1, 3, 224, 224))
    assert c.gmacs == pytest.approx(gmacs, abs=0.06)  # the papers round to 0.1 G
    assert c.attention_flops > 0


def test_attention_is_counted_once_on_either_path():
    """SDPA on CPU reaches a kernel torch's counter has no formula for; the reference path is plain matmuls."""
    model = SVT(arch=TINY_SVT)
    fused = count_complexity(model, (2, 3, 97, 131))
    reference = count_complexity(set_fused_attn(model, False), (2, 3, 97, 131))
    assert fused.flops == reference.flops and fused.attention_flops == reference.attention_flops
    # the attention share grows with the input (global sub-sampled attention is quadratic in tokens)
    assert count_complexity(model, (1, 3, 512, 512)).attention_share > fused.attention_share


def test_mfu():
    assert mfu(1e9, 100, 1e12) == pytest.approx(0.1)
    assert mfu(1e9, 100, 1e12, train=True) == pytest.approx(0.3)


def test_get_flops_tool_prints_a_table(tmp_path):
    tool = str(ROOT / "tools/analysis_tools/get_flops.py")
    res = run_tool(tool, "pcpvt-small", "--size", "224", "800x1216", "--json", str(tmp_path / "f.json"))
    rows = json.loads((tmp_path / "f.json").read_text())
    assert [r["size"] for r in rows] == ["224x224", "800x1216"]
    assert "| pcpvt-small | 224x224 | 23.6 | 3.81 |" in res.stdout
    assert "expected a config file or one of" in run_tool_in_process(tool, "pcpvt-smal", expect=1)[1]
