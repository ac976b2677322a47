"""Data-driven smooth HT_all reweighting of tt+≥1b (derivation, spline, KDE, correctionlib output)."""
