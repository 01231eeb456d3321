"""Research on top of cpvt_mm, outside the library: the built-in demo (``make demo``, :mod:`.demo`) and the
paper-claims suite (``make experiments``, :mod:`.experiments`) with its position probe and attention
statistics. Everything here calls cpvt_mm's functions (``cpvt_mm.apis``, ``cpvt_mm.evaluation``,
``cpvt_mm.analysis``); nothing in cpvt_mm imports this package.
"""
