"""``python -m cpvt_mm.compat``: what ``import cpvt_mm`` changed in the host stack, and why."""

import cpvt_mm  # noqa: F401  (applies the fixes)
from cpvt_mm.compat import DISABLE_ENV, FIXES, mmcv_ops, status

state = status()
width = max(len(f.name) for f in FIXES)
for fix in FIXES:
    print(f"{fix.name:<{width}}  {state.get(fix.name, '?'):<10}  {fix.why}")
print(f"\n{mmcv_ops.describe()}")
print(f"switch a fix off with {DISABLE_ENV}=name[,name...] before importing cpvt_mm")
