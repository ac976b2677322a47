"""Resonance searches: signal models, background families, f-test, envelope, significance, limits."""
