"""mlops_common: the contracts every component of the platform shares.

A leaf package: it imports no component, and every component imports it (a test enforces both).
What lives here is what two or more components must agree on, and nothing else.
"""
