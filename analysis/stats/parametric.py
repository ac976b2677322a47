"""What :func:`analysis.stats.fit.fit` needs from a likelihood, and two likelihoods that are not pyhf models.

:class:`FittableLikelihood` is the protocol the core's fit, MINOS and profile scans use (the pyhf
:class:`~analysis.stats.likelihood.Likelihood` satisfies it).  :class:`CostLikelihood` wraps an iminuit cost
function (``iminuit.cost.ExtendedBinnedNLL``/``BinnedNLL``, with ``mask`` for blinded bins — preferred for a
binned Poisson likelihood); :class:`FunctionLikelihood` wraps a Python function returning −2 ln L (for
models an iminuit cost cannot express, e.g. a signal strength that may go negative behind a positivity guard).
Neither imports pyhf.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from analysis.stats.errors import StatsError


@runtime_checkable
class FittableLikelihood(Protocol):
    """The likelihood interface of the statistics core (what ``fit``/``run_minos``/``profile_scan`` use).

    Attributes:
        labels: parameter names, length n_par.
        init, bounds, fixed: suggested start (n_par,), (low, high) per parameter (±inf allowed), fixed flags (n_par,).
        poi_index: index of the parameter of interest, or None.
        data: the observed data passed to ``twice_nll`` when no other dataset is given (may be None).
        n_nan: number of non-finite −2 ln L evaluations so far (the fit reports the increase).
        uses_jax: True when an exact Hessian is available via ``hessian`` (pyhf + JAX only).

    Optional: ``expected_data(pars, include_auxdata=False)`` and ``main_data(data)`` (pyhf models) let a
    failed fit retry from a POI start estimated from the observed yield.
    """

    labels: list[str]
    init: np.ndarray
    bounds: list[tuple[float, float]]
    fixed: np.ndarray
    poi_index: int | None
    data: Any
    n_nan: int
    uses_jax: bool

    @property
    def n_pars(self) -> int: ...

    @property
    def has_gradient(self) -> bool: ...

    def twice_nll(self, pars: Sequence[float], data: Any = None) -> float: ...

    def grad(self, pars: Sequence[float], data: Any = None) -> np.ndarray: ...

    def index(self, name: str) -> int: ...


class NamedParameters:
    """Parameter-name helpers shared by every likelihood of the core (needs ``labels`` and ``poi_index``)."""

    labels: list[str]
    poi_index: int | None

    @property
    def n_pars(self) -> int:
        """Number of parameters."""
        return len(self.labels)

    @property
    def poi_name(self) -> str | None:
        """Name of the parameter of interest (None without one)."""
        return None if self.poi_index is None else self.labels[self.poi_index]

    def index(self, name: str) -> int:
        """Index of parameter ``name``; KeyError when unknown."""
        try:
            return self.labels.index(name)
        except ValueError:
            raise KeyError(name) from None


class _Base(NamedParameters):
    """Parameter bookkeeping shared by the non-pyhf likelihoods."""

    uses_jax = False

    def __init__(self, labels: Sequence[str], init: Sequence[float], bounds: Sequence[tuple[float, float]] | None,
                 fixed: Sequence[bool] | None, poi: str | int | None) -> None:
        self.labels = [str(x) for x in labels]
        n = len(self.labels)
        if len(set(self.labels)) != n:
            raise StatsError(f"parameter names must be unique: {self.labels}")
        self.init = np.asarray(init, dtype=float).copy()
        if self.init.shape != (n,):
            raise StatsError(f"{n} parameter names but init has shape {self.init.shape}")
        self.bounds = [(-np.inf, np.inf)] * n if bounds is None else [(float(lo), float(hi)) for lo, hi in bounds]
        if len(self.bounds) != n:
            raise StatsError(f"{n} parameter names but {len(self.bounds)} bounds")
        for name, (lo, hi) in zip(self.labels, self.bounds, strict=True):
            if not lo < hi:
                raise StatsError(f"parameter {name}: lower bound {lo:g} not below upper bound {hi:g}")
        self.fixed = np.zeros(n, dtype=bool) if fixed is None else np.asarray(fixed, dtype=bool).copy()
        self.poi_index: int | None = None if poi is None else (int(poi) if isinstance(poi, (int, np.integer)) else self.index(poi))
        self.n_nan = 0
        self._lock = threading.Lock()

    def _count(self, value: float) -> float:
        if not np.isfinite(value):
            with self._lock:
                self.n_nan += 1
        return value


class FunctionLikelihood(_Base):
    """−2 ln L given as a Python function ``twice_nll(pars, data) -> float`` (pars shape (n_par,)).

    Args:
        twice_nll: −2 ln L (any additive constant); ``data`` is this object's ``data`` unless a fit passes
            another dataset.
        labels, init: parameter names and suggested start.
        bounds: (low, high) per parameter (default unbounded); fixed: flags (default none).
        poi: name or index of the parameter of interest.
        grad: optional analytic gradient ``grad(pars, data) -> (n_par,)`` of −2 ln L.
        data: the observed data handed to ``twice_nll`` (anything the function understands, or None).
    """

    def __init__(self, twice_nll: Callable[[np.ndarray, Any], float], labels: Sequence[str], init: Sequence[float], *,
                 bounds: Sequence[tuple[float, float]] | None = None, fixed: Sequence[bool] | None = None,
                 poi: str | int | None = None, grad: Callable[[np.ndarray, Any], np.ndarray] | None = None,
                 data: Any = None) -> None:
        super().__init__(labels, init, bounds, fixed, poi)
        self._f, self._g, self.data = twice_nll, grad, data

    @property
    def has_gradient(self) -> bool:
        """True when an analytic gradient was given."""
        return self._g is not None

    def twice_nll(self, pars: Sequence[float], data: Any = None) -> float:
        """−2 ln L at ``pars`` for ``data`` (default: this likelihood's data); counts non-finite values."""
        return self._count(float(self._f(np.asarray(pars, dtype=float), self.data if data is None else data)))

    def grad(self, pars: Sequence[float], data: Any = None) -> np.ndarray:
        """∂(−2 ln L)/∂θ, shape (n_par,); RuntimeError when no gradient was given."""
        if self._g is None:
            raise RuntimeError("no analytic gradient")
        return np.asarray(self._g(np.asarray(pars, dtype=float), self.data if data is None else data), dtype=float)


class CostLikelihood(_Base):
    """An iminuit cost function (e.g. ``iminuit.cost.ExtendedBinnedNLL`` with ``mask``) as a core likelihood.

    ``twice_nll`` is ``cost(*pars) / cost.errordef`` (iminuit's binned NLLs already return −2 ln L up to a
    data-only constant, the Baker–Cousins deviance, with errordef 1).  A fit on other data (toys, Asimov)
    evaluates a copy of the cost whose ``n`` holds those counts.

    Args:
        cost: the iminuit cost; its parameter names are the labels unless ``labels`` is given.
        init: suggested start; bounds/fixed/poi as for :class:`FunctionLikelihood`.
    """

    def __init__(self, cost: Any, init: Sequence[float], *, labels: Sequence[str] | None = None,
                 bounds: Sequence[tuple[float, float]] | None = None, fixed: Sequence[bool] | None = None,
                 poi: str | int | None = None) -> None:
        from iminuit.util import describe

        names = list(labels) if labels is not None else list(describe(cost))
        super().__init__(names, init, bounds, fixed, poi)
        self.cost = cost
        self.data = None
        self._scale = 1.0 / float(cost.errordef)
        self._copies: dict[bytes, Any] = {}

    def _cost_for(self, data: Any) -> Any:
        if data is None:
            return self.cost
        counts = np.asarray(data, dtype=float)
        key = counts.tobytes()
        c = self._copies.get(key)
        if c is None:
            if len(self._copies) > 8:
                self._copies.clear()
            c = copy.deepcopy(self.cost)
            c.n = counts
            self._copies[key] = c
        return c

    @property
    def has_gradient(self) -> bool:
        """True when the cost has an analytic gradient (its model gives one)."""
        return bool(getattr(self.cost, "has_grad", False))

    def twice_nll(self, pars: Sequence[float], data: Any = None) -> float:
        """−2 ln L at ``pars`` (shape (n_par,)) for ``data`` (counts; default the cost's own); counts non-finite values."""
        return self._count(float(self._cost_for(data)(*np.asarray(pars, dtype=float))) * self._scale)

    def grad(self, pars: Sequence[float], data: Any = None) -> np.ndarray:
        """∂(−2 ln L)/∂θ from the cost's analytic gradient, shape (n_par,)."""
        return np.asarray(self._cost_for(data).grad(*np.asarray(pars, dtype=float)), dtype=float) * self._scale
