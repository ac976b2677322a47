"""Reinterpretation (RECAST): preserved data and background against a new signal (``reinterpret``), and
signal normalisation to cross-section × luminosity (``scale``)."""
