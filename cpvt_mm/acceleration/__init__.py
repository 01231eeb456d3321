"""Opt-in speed-ups that swap fused modules into a built, plain model (reversible; the models never need them)."""

from .cpu import CpuFusionError, cpu_fusion_unavailable, fuse_cpu, fuse_cpu_for_device, is_cpu_fused, unfuse_cpu

__all__ = ["CpuFusionError", "cpu_fusion_unavailable", "fuse_cpu", "fuse_cpu_for_device", "is_cpu_fused", "unfuse_cpu"]
