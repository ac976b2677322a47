"""The AGC ttbar workflow: files → histograms (``run``), statistical model and fit (``inference``),
plots of the histograms (``plots``), and the whole chain on synthetic data (``demo``)."""
