"""TAVR planning over a case: annulus measurement, device sizing and the virtual valve: the "tavr" step (issue 14)."""
