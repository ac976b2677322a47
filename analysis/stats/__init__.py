"""One statistics core for every workflow: fits with a quality guard, intervals, CLs limits, significances,
goodness of fit, workspace controls and the Brazil-band plot.

Modules: :mod:`~analysis.stats.likelihood` (compiled −2 ln L of a pyhf model), :mod:`~analysis.stats.parametric`
(the likelihood protocol; iminuit-cost and Python-function likelihoods for non-pyhf models such as the resonance
fits), :mod:`~analysis.stats.fit` (the fit entry, :class:`FitResult`/:class:`FitQuality`), :mod:`~analysis.stats.intervals` (MINOS/HESSE,
profile scans), :mod:`~analysis.stats.limits` (pyhf hypotest CLs, upper limits), :mod:`~analysis.stats.significance`,
:mod:`~analysis.stats.gof` (saturated-model χ²), :mod:`~analysis.stats.asymptotics` (Cowan et al. formulae),
:mod:`~analysis.stats.prune` (``--fix``/``--prune``, near-degenerate constraints), :mod:`~analysis.stats.ranking`,
:mod:`~analysis.stats.plots`, :mod:`~analysis.stats.capture`/:mod:`~analysis.stats.stage` (Minuit's stream,
stage messages).  Importing the package changes no global state.
"""
