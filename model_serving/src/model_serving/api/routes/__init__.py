"""One router per concern: predict, feedback, model, health (and metrics).

Each module builds its router in a function that receives what the routes call (no global
state). These modules do not use ``from __future__ import annotations``: FastAPI evaluates the
routes' annotations at runtime, and some name objects local to those functions.
"""
