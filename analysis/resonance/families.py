"""Background function families over the mass observable, each at increasing order (flashggFinalFit's set).

Every function is a shape normalised over the fit bins (the bins of the range that are not blinded), so a fit
multiplies it by a separate normalisation parameter.  Sums (of exponentials, power laws, Laurent terms) are
mixtures of individually normalised components with recursive fractions, which keeps the fractions in [0, 1]
and makes order n+1 contain order n exactly (the new component enters with fraction 0).

Variables used by the shapes (x is the observable, ``lo``/``hi`` the fit range):
  t = (x - lo) / (hi - lo) ∈ [0, 1]      exponentials (slopes a_i per unit of t) and Bernstein polynomials
  u = x / lo ≥ 1                          power laws u^p_i and Laurent terms u^(-4), u^(-5), u^(-3), ...
  z = x / sqrt_s                          dijet: (1 - z)^p1 · z^-(p2 + p3 ln z + p4 ln² z), with √s of the data
                                          (the search takes it from its config's sqrt_s_tev)
  t as above                              expopoly: exp(a1 t + a2 t² + a3 t³) (the search's "expo2")

This is the one catalogue of background functions: the f-test/envelope use the families at their orders and the
diphoton search names a few of them (:data:`SEARCH_FUNCTIONS`: expo, powerlaw, dijet2, expo2, dijet3).

Orders follow flashggFinalFit: the order is the number of free shape parameters; exponential and power-law
sums exist at odd orders only (k components: k slopes + k-1 fractions = 2k-1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

from analysis.errors import AnalysisError

FAMILY_ALIASES = {
    "exponential": "exponential", "exp": "exponential", "expo": "exponential",
    "bernstein": "bernstein", "bern": "bernstein", "pol": "bernstein",
    "laurent": "laurent", "lau": "laurent",
    "powerlaw": "powerlaw", "pow": "powerlaw", "power": "powerlaw", "power_law": "powerlaw",
    "dijet": "dijet",
    "expopoly": "expopoly", "exppoly": "expopoly",
}
DEFAULT_FAMILIES = ("exponential", "bernstein", "laurent", "powerlaw")
ALL_FAMILIES = DEFAULT_FAMILIES + ("dijet", "expopoly")
SHORT_NAMES = {"exponential": "exp", "bernstein": "bern", "laurent": "lau", "powerlaw": "pow", "dijet": "dijet",
               "expopoly": "expopoly"}
FRACTION_EPS = 0.02  # fraction a new mixture component starts with when embedding a lower order


@dataclass(frozen=True)
class BinGrid:
    """Gauss-Legendre nodes inside every bin and the mask of bins that enter the fit (and normalisation)."""

    edges: np.ndarray
    mask: np.ndarray
    nodes: np.ndarray  # (n_bins * n_nodes,) observable values
    weights: np.ndarray  # (n_bins, n_nodes) quadrature weights (bin-width scaled)
    lo: float
    hi: float

    @property
    def n_bins(self) -> int:
        """Number of bins in the histogram."""
        return len(self.edges) - 1

    @property
    def widths(self) -> np.ndarray:
        """Bin widths."""
        return np.diff(self.edges)

    @property
    def centers(self) -> np.ndarray:
        """Bin centres."""
        return 0.5 * (self.edges[1:] + self.edges[:-1])


def blind_mask(edges: np.ndarray, blind: tuple[float, float] | None) -> np.ndarray:
    """True for bins that enter the fit: every bin whose centre lies outside the blinded window."""
    centers = 0.5 * (edges[1:] + edges[:-1])
    if blind is None:
        return np.ones(len(centers), dtype=bool)
    blo, bhi = float(blind[0]), float(blind[1])
    if not blo < bhi:
        raise AnalysisError(f"blind window {blind}: lower edge must be below upper edge")
    return ~((centers > blo) & (centers < bhi))


def make_grid(edges: np.ndarray, mask: np.ndarray | None = None, n_nodes: int = 3) -> BinGrid:
    """Build the quadrature grid for ``edges`` (strictly increasing) with an optional fit mask."""
    edges = np.asarray(edges, dtype=float)
    if edges.ndim != 1 or len(edges) < 2 or not np.all(np.diff(edges) > 0):
        raise AnalysisError("bin edges must be a strictly increasing 1D array with at least 2 entries")
    mask = np.ones(len(edges) - 1, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != (len(edges) - 1,):
        raise AnalysisError(f"fit mask has {mask.shape} entries for {len(edges) - 1} bins")
    x, w = np.polynomial.legendre.leggauss(n_nodes)
    half = 0.5 * np.diff(edges)
    mid = 0.5 * (edges[1:] + edges[:-1])
    nodes = (mid[:, None] + half[:, None] * x[None, :]).ravel()
    weights = half[:, None] * w[None, :]
    return BinGrid(edges=edges, mask=mask, nodes=nodes, weights=weights, lo=float(edges[0]), hi=float(edges[-1]))


@dataclass(frozen=True)
class FunctionSpec:
    """One family at one order: parameter names/bounds and the log-densities of its mixture components."""

    family: str
    order: int
    param_names: tuple[str, ...]
    bounds: tuple[tuple[float, float], ...]
    default: tuple[float, ...]
    # (params, x, grid) -> (n_components, len(x)) log of unnormalised component densities
    component_logs: Callable[[np.ndarray, np.ndarray, BinGrid], np.ndarray] = field(repr=False, compare=False)
    # params -> (n_components,) mixture weights summing to 1
    weights: Callable[[np.ndarray], np.ndarray] = field(repr=False, compare=False)
    random_start: Callable[[np.random.Generator], np.ndarray] = field(repr=False, compare=False)
    embed: Callable[["FunctionSpec", np.ndarray], np.ndarray] | None = field(default=None, repr=False, compare=False)
    parts: tuple["FunctionSpec", "FunctionSpec"] | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        """flashgg-style name, e.g. ``exp3``, ``bern4``; products read ``exp1xbern2``."""
        if self.parts is not None:
            return f"{self.parts[0].name}x{self.parts[1].name}"
        return f"{SHORT_NAMES.get(self.family, self.family)}{self.order}"

    @property
    def n_params(self) -> int:
        """Number of free shape parameters (the normalisation is separate)."""
        return len(self.param_names)

    def _normalised(self, params: np.ndarray, grid: BinGrid) -> tuple[np.ndarray, np.ndarray]:
        """Per-component bin integrals normalised over the mask, and the per-component normalisers."""
        logs = self.component_logs(params, grid.nodes, grid)
        shift = np.max(logs, axis=1, keepdims=True)
        shift = np.where(np.isfinite(shift), shift, 0.0)
        vals = np.exp(logs - shift).reshape(logs.shape[0], grid.n_bins, -1)
        integrals = np.einsum("cbn,bn->cb", vals, grid.weights)
        norm = integrals[:, grid.mask].sum(axis=1)
        return integrals, norm[:, None] * np.exp(shift)

    def bin_fractions(self, params: np.ndarray, grid: BinGrid) -> np.ndarray:
        """Expected fraction of events per bin, normalised so the masked (fit) bins sum to 1."""
        integrals, _ = self._normalised(params, grid)
        norm = integrals[:, grid.mask].sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            comp = integrals / norm[:, None]
        return self.weights(np.asarray(params, dtype=float)) @ comp

    def density(self, params: np.ndarray, x: np.ndarray, grid: BinGrid) -> np.ndarray:
        """Probability density at ``x`` (per unit observable) with the same normalisation as bin_fractions."""
        params = np.asarray(params, dtype=float)
        _, scale = self._normalised(params, grid)
        logs = self.component_logs(params, np.asarray(x, dtype=float), grid)
        with np.errstate(divide="ignore", invalid="ignore"):
            comp = np.exp(logs) / scale
        return self.weights(params) @ comp

    def starts(self, rng: np.random.Generator, n_random: int, lower: tuple["FunctionSpec", np.ndarray] | None = None) -> list[np.ndarray]:
        """Starting points: the embedded lower-order solution (if given), the default, and random draws."""
        out = []
        if lower is not None and self.embed is not None:
            out.append(self._clip(self.embed(lower[0], np.asarray(lower[1], dtype=float))))
        out.append(self._clip(np.asarray(self.default, dtype=float)))
        out.extend(self._clip(self.random_start(rng)) for _ in range(n_random))
        return out

    def _clip(self, p: np.ndarray) -> np.ndarray:
        """Clip a start strictly inside the bounds (iminuit's bound transform dislikes the edges)."""
        lo = np.array([b[0] for b in self.bounds])
        hi = np.array([b[1] for b in self.bounds])
        margin = 1e-6 * (hi - lo)
        return np.clip(p, lo + margin, hi - margin)


# --------------------------------------------------------------------------------------------------- helpers
def _recursive_weights(fracs: np.ndarray) -> np.ndarray:
    """Mixture weights from recursive fractions: the newest component k has weight f_k, older ones share 1 - f_k."""
    k = len(fracs) + 1
    w = np.empty(k)
    remaining = 1.0
    for j in range(k - 1, 0, -1):
        w[j] = remaining * fracs[j - 1]
        remaining *= 1.0 - fracs[j - 1]
    w[0] = remaining
    return w


def _t(x: np.ndarray, grid: BinGrid) -> np.ndarray:
    """Map the observable to [0, 1] over the fit range."""
    return (x - grid.lo) / (grid.hi - grid.lo)


def _u(x: np.ndarray, grid: BinGrid) -> np.ndarray:
    """Observable in units of the lower range edge (needs lo > 0)."""
    return x / grid.lo


def _embed_by_name(spec: FunctionSpec, lower: FunctionSpec, params: np.ndarray) -> np.ndarray:
    """Start for ``spec`` reusing the lower-order parameters by name; new ones get their defaults."""
    values = dict(zip(lower.param_names, params))
    return np.array([values.get(n, d) for n, d in zip(spec.param_names, spec.default)])


def _sum_family(family: str, order: int, shape_name: str, shape_bounds: tuple[float, float],
                shape_defaults: Sequence[float], log_term: Callable[[np.ndarray, np.ndarray, BinGrid], np.ndarray],
                random_shape: Callable[[np.random.Generator], float]) -> FunctionSpec:
    """A sum of k = (order+1)/2 one-parameter components with recursive fractions."""
    if order < 1 or order % 2 == 0:
        raise AnalysisError(f"{family}: only odd orders exist (got {order})")
    k = (order + 1) // 2
    names = tuple(f"f{j}" for j in range(1, k)) + tuple(f"{shape_name}{j}" for j in range(k))
    bounds = ((0.0, 1.0),) * (k - 1) + (shape_bounds,) * k
    shapes = [shape_defaults[j % len(shape_defaults)] for j in range(k)]
    default = (0.3,) * (k - 1) + tuple(shapes)

    def component_logs(p: np.ndarray, x: np.ndarray, grid: BinGrid) -> np.ndarray:
        return log_term(np.asarray(p[k - 1:])[:, None], x[None, :], grid)

    def weights(p: np.ndarray) -> np.ndarray:
        return _recursive_weights(np.asarray(p[: k - 1]))

    def random_start(rng: np.random.Generator) -> np.ndarray:
        return np.concatenate([rng.uniform(0.05, 0.6, k - 1), [random_shape(rng) for _ in range(k)]])

    spec = FunctionSpec(family, order, names, bounds, default, component_logs, weights, random_start)

    def embed(lower: FunctionSpec, params: np.ndarray) -> np.ndarray:
        start = _embed_by_name(spec, lower, params)
        start[k - 2] = FRACTION_EPS  # newest fraction f_{k-1}
        return start

    return FunctionSpec(family, order, names, bounds, default, component_logs, weights, random_start, embed)


# --------------------------------------------------------------------------------------------------- families
def exponential(order: int) -> FunctionSpec:
    """Sum of (order+1)/2 exponentials exp(a_i t), t = (x - lo)/(hi - lo)."""
    return _sum_family("exponential", order, "a", (-80.0, 30.0), (-4.0, -12.0, -1.0, -25.0),
                       lambda a, x, g: a * _t(x, g), lambda rng: rng.uniform(-30.0, 3.0))


def powerlaw(order: int) -> FunctionSpec:
    """Sum of (order+1)/2 power laws u^p_i, u = x/lo."""
    return _sum_family("powerlaw", order, "p", (-60.0, 20.0), (-5.0, -15.0, -1.0, -30.0),
                       lambda p, x, g: p * np.log(_u(x, g)), lambda rng: rng.uniform(-30.0, 2.0))


def laurent_powers(order: int) -> list[int]:
    """Powers of the Laurent series at ``order``: -4, then alternately lower (-5, -6, ...) and higher (-3, -2, ...)."""
    n_lower = int(np.ceil(order / 2))
    n_higher = order - n_lower
    return [-4] + [-4 - i for i in range(1, n_lower + 1)] + [-4 + i for i in range(1, n_higher + 1)]


def laurent(order: int) -> FunctionSpec:
    """Laurent series Σ w_i u^(k_i), u = x/lo, with ``order`` fractions (flashgg's term ordering)."""
    if order < 1:
        raise AnalysisError(f"laurent: order must be ≥ 1 (got {order})")
    powers = laurent_powers(order)
    # keep the recursive-fraction order = the order in which terms are added (newest has the last fraction)
    add_order = [-4]
    for n in range(1, order + 1):
        add_order.append(next(p for p in laurent_powers(n) if p not in add_order))
    assert sorted(add_order) == sorted(powers)
    kpow = np.array(add_order, dtype=float)[:, None]
    names = tuple(f"f{j}" for j in range(1, order + 1))

    def component_logs(p: np.ndarray, x: np.ndarray, grid: BinGrid) -> np.ndarray:
        return kpow * np.log(_u(x, grid))[None, :]

    def weights(p: np.ndarray) -> np.ndarray:
        return _recursive_weights(np.asarray(p))

    def random_start(rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(0.02, 0.6, order)

    spec = FunctionSpec("laurent", order, names, ((0.0, 1.0),) * order, (0.2,) * order,
                        component_logs, weights, random_start)

    def embed(lower: FunctionSpec, params: np.ndarray) -> np.ndarray:
        start = _embed_by_name(spec, lower, params)
        start[-1] = FRACTION_EPS
        return start

    return FunctionSpec("laurent", order, names, spec.bounds, spec.default, component_logs, weights, random_start, embed)


@lru_cache(maxsize=32)
def _binomials(n: int) -> np.ndarray:
    """Binomial coefficients C(n, i)."""
    from scipy.special import comb

    return comb(n, np.arange(n + 1))


def bernstein_values(coeffs: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Σ c_i C(n,i) t^i (1-t)^(n-i) for coefficients c_0..c_n."""
    n = len(coeffs) - 1
    i = np.arange(n + 1)[:, None]
    basis = _binomials(n)[:, None] * t[None, :] ** i * (1.0 - t[None, :]) ** (n - i)
    return np.asarray(coeffs) @ basis


def bernstein(order: int) -> FunctionSpec:
    """Bernstein polynomial of degree ``order`` in t with c_0 = 1 and c_1..c_n ≥ 0 (positive everywhere)."""
    if order < 0:
        raise AnalysisError(f"bernstein: order must be ≥ 0 (got {order})")
    names = tuple(f"c{i}" for i in range(1, order + 1))
    default = tuple(float(0.5 ** i) for i in range(1, order + 1))

    def component_logs(p: np.ndarray, x: np.ndarray, grid: BinGrid) -> np.ndarray:
        coeffs = np.concatenate([[1.0], np.asarray(p, dtype=float)])
        t = np.clip(_t(x, grid), 0.0, 1.0)
        with np.errstate(divide="ignore"):
            return np.log(np.maximum(bernstein_values(coeffs, t), 0.0))[None, :]

    def random_start(rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(0.0, 1.5, order) * rng.uniform(0.1, 1.0)

    def embed(lower: FunctionSpec, params: np.ndarray) -> np.ndarray:
        coeffs = np.concatenate([[1.0], np.asarray(params, dtype=float)])
        while len(coeffs) - 1 < order:  # degree elevation: exact representation at the higher degree
            n = len(coeffs) - 1
            i = np.arange(n + 2)
            padded_lo = np.concatenate([[0.0], coeffs])
            padded_hi = np.concatenate([coeffs, [0.0]])
            coeffs = i / (n + 1) * padded_lo + (1 - i / (n + 1)) * padded_hi
        return coeffs[1:] if lower.family == "bernstein" else np.asarray(default)

    return FunctionSpec("bernstein", order, names, ((0.0, 200.0),) * order, default,
                        component_logs, lambda p: np.ones(1), random_start, embed)


DIJET_SQRT_S_GEV = 13000.0


def dijet(order: int, sqrt_s: float = DIJET_SQRT_S_GEV) -> FunctionSpec:
    """Dijet function (1 - z)^p1 z^-(p2 + p3 ln z + p4 ln² z), z = x/√s; order 1 = z^-p2, order n uses p1..pn.

    Internally ln z is centred at the range midpoint (same function space, better-conditioned parameters)
    and p1 is scaled by |ln(1 - z_hi)| so that every parameter acts at O(1)."""
    if not 1 <= order <= 4:
        raise AnalysisError(f"dijet: order must be 1..4 (got {order})")
    all_names = ("p1", "p2", "p3", "p4")
    all_bounds = ((-60.0, 60.0), (-40.0, 60.0), (-40.0, 40.0), (-40.0, 40.0))
    all_default = (0.0, 5.0, 0.0, 0.0)
    active = (1,) if order == 1 else tuple(range(order))
    names = tuple(all_names[i] for i in active)

    def component_logs(p: np.ndarray, x: np.ndarray, grid: BinGrid) -> np.ndarray:
        full = np.zeros(4)
        full[list(active)] = p
        z = x / sqrt_s
        zc = 0.5 * (grid.lo + grid.hi) / sqrt_s
        lnz = np.log(z / zc)
        scale1 = abs(np.log1p(-grid.hi / sqrt_s))
        with np.errstate(invalid="ignore", divide="ignore"):
            val = full[0] * np.log1p(-z) / scale1 - (full[1] * lnz + full[2] * lnz**2 + full[3] * lnz**3)
        return np.where(z < 1.0, val, -np.inf)[None, :]

    def random_start(rng: np.random.Generator) -> np.ndarray:
        full = np.array([rng.uniform(-5, 5), rng.uniform(0, 20), rng.uniform(-3, 3), rng.uniform(-1, 1)])
        return full[list(active)]

    spec = FunctionSpec("dijet", order, names, tuple(all_bounds[i] for i in active),
                        tuple(all_default[i] for i in active), component_logs, lambda p: np.ones(1), random_start)

    def embed(lower: FunctionSpec, params: np.ndarray) -> np.ndarray:
        start = _embed_by_name(spec, lower, params)
        for i, n in enumerate(names):
            if n not in lower.param_names:
                start[i] = 0.0
        return start

    return FunctionSpec("dijet", order, names, spec.bounds, spec.default, component_logs,
                        spec.weights, random_start, embed)


def expopoly(order: int) -> FunctionSpec:
    """Exponential of a polynomial, exp(a1 t + … + a_n t^n), t = (x - lo)/(hi - lo); order n uses a1..an.

    Order 1 is exponential(1); order 2 is the search's "expo2" (a Gaussian-like curvature of the log-slope)."""
    if not 1 <= order <= 3:
        raise AnalysisError(f"expopoly: order must be 1..3 (got {order})")
    names = tuple(f"a{i}" for i in range(1, order + 1))
    bounds = ((-80.0, 30.0),) + ((-60.0, 60.0),) * (order - 1)
    default = (-4.0,) + (0.0,) * (order - 1)
    powers = np.arange(1, order + 1, dtype=float)[:, None]

    def component_logs(p: np.ndarray, x: np.ndarray, grid: BinGrid) -> np.ndarray:
        t = _t(x, grid)
        return (np.asarray(p, dtype=float) @ (t[None, :] ** powers))[None, :]

    def random_start(rng: np.random.Generator) -> np.ndarray:
        return np.concatenate([[rng.uniform(-30.0, 3.0)], rng.uniform(-3.0, 3.0, order - 1)])

    spec = FunctionSpec("expopoly", order, names, bounds, default, component_logs, lambda p: np.ones(1), random_start)

    def embed(lower: FunctionSpec, params: np.ndarray) -> np.ndarray:
        start = _embed_by_name(spec, lower, params)
        if lower.family == "exponential" and lower.order == 1:
            start[0] = float(params[0])
        return start

    return FunctionSpec("expopoly", order, names, bounds, default, component_logs, spec.weights, random_start, embed)


FAMILY_BUILDERS: dict[str, Callable[[int], FunctionSpec]] = {
    "exponential": exponential,
    "bernstein": bernstein,
    "laurent": laurent,
    "powerlaw": powerlaw,
    "dijet": dijet,
    "expopoly": expopoly,
}
FAMILY_ORDERS: dict[str, tuple[int, ...]] = {
    "exponential": (1, 3, 5, 7),
    "bernstein": (1, 2, 3, 4, 5, 6, 7),
    "laurent": (1, 2, 3, 4, 5),
    "powerlaw": (1, 3, 5, 7),
    "dijet": (1, 2, 3, 4),
    "expopoly": (1, 2, 3),
}
NEEDS_POSITIVE_RANGE = {"laurent", "powerlaw", "dijet"}


def canonical_family(name: str) -> str:
    """Resolve a family name or alias (case-insensitive); unknown names are a user error."""
    key = str(name).strip().lower()
    if key not in FAMILY_ALIASES:
        raise AnalysisError(f"unknown background family {name!r}; choose from {', '.join(ALL_FAMILIES)}")
    return FAMILY_ALIASES[key]


def family_orders(family: str, max_order: int | None = None) -> tuple[int, ...]:
    """Allowed orders of a family in increasing order, optionally capped."""
    orders = FAMILY_ORDERS[canonical_family(family)]
    return tuple(o for o in orders if max_order is None or o <= max_order)


def get_function(family: str, order: int, sqrt_s: float | None = None) -> FunctionSpec:
    """The function of ``family`` at ``order``; ``sqrt_s`` [GeV] sets the dijet variable z = x/√s
    (default :data:`DIJET_SQRT_S_GEV`; other families do not depend on it)."""
    fam = canonical_family(family)
    if order not in FAMILY_ORDERS[fam] and not (fam == "bernstein" and order == 0):
        raise AnalysisError(f"{fam}: order {order} not available (orders {FAMILY_ORDERS[fam]})")
    if fam == "dijet" and sqrt_s is not None:
        if not (np.isfinite(sqrt_s) and sqrt_s > 0):
            raise AnalysisError(f"dijet: √s must be a positive number of GeV (got {sqrt_s})")
        return dijet(order, float(sqrt_s))
    return FAMILY_BUILDERS[fam](order)


# the diphoton search's function names (search.yml background/function) in the one catalogue, in the order of
# complexity in which the search tries them on simulation
SEARCH_FUNCTIONS: dict[str, tuple[str, int]] = {
    "expo": ("exponential", 1),
    "powerlaw": ("powerlaw", 1),
    "dijet2": ("dijet", 2),
    "expo2": ("expopoly", 2),
    "dijet3": ("dijet", 3),
}
SEARCH_ORDER = tuple(SEARCH_FUNCTIONS)


def search_function(name: str, sqrt_s: float | None = None) -> FunctionSpec:
    """The search's function ``name`` (``expo``, ``powerlaw``, ``dijet2``, ``expo2``, ``dijet3``) at √s [GeV]."""
    if name not in SEARCH_FUNCTIONS:
        raise AnalysisError(f"unknown search background function {name!r}; choose from {', '.join(SEARCH_ORDER)}")
    family, order = SEARCH_FUNCTIONS[name]
    return get_function(family, order, sqrt_s)


def product(first: FunctionSpec, second: FunctionSpec) -> FunctionSpec:
    """Product of two functions (e.g. exponential × Bernstein), for the 2D f-test over (order_1, order_2).

    Components are those of ``first`` multiplied by ``second``; the mixture weights are those of ``first``."""
    n1 = first.n_params

    def component_logs(p: np.ndarray, x: np.ndarray, grid: BinGrid) -> np.ndarray:
        return first.component_logs(p[:n1], x, grid) + second.component_logs(p[n1:], x, grid)

    def random_start(rng: np.random.Generator) -> np.ndarray:
        return np.concatenate([first.random_start(rng), second.random_start(rng)])

    def embed(lower: FunctionSpec, params: np.ndarray) -> np.ndarray:
        if lower.parts is None:
            return np.asarray(first.default + second.default, dtype=float)
        l1, l2 = lower.parts
        p1, p2 = np.asarray(params[: l1.n_params]), np.asarray(params[l1.n_params:])
        s1 = p1 if l1.order == first.order or first.embed is None else first.embed(l1, p1)
        s2 = p2 if l2.order == second.order or second.embed is None else second.embed(l2, p2)
        return np.concatenate([s1, s2]).astype(float)

    names = tuple(f"{first.name}_{n}" for n in first.param_names) + tuple(f"{second.name}_{n}" for n in second.param_names)
    return FunctionSpec(f"{first.family}x{second.family}", first.order * 100 + second.order, names,
                        first.bounds + second.bounds, first.default + second.default,
                        component_logs, first.weights, random_start, embed, parts=(first, second))
