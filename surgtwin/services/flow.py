"""Vessel centerlines and reduced-order blood flow over a case: the "centerline" and "flow" steps (issue 14)."""
