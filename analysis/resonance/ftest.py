"""The f-test per family (flashggFinalFit's fTest) and the 2D f-test over two orders of a product function.

Per family the order is raised while the likelihood-ratio improvement 2(NLL_prev − NLL) is significant,
p = χ²_sf(Δ, Δn_params) < ``pvalue_threshold``; the truncation order is the last significant one (the first
order is always accepted).  The envelope keeps the orders from the truncation order upwards while their
f-test p stays below ``envelope_threshold`` (flashgg's upperEnvThreshold, 0.1), stopping at the first that
does not, and drops any order whose goodness-of-fit p is below ``gof_threshold`` (0.01) or whose fit did not
converge.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

from scipy import stats

from analysis.errors import AnalysisError
from analysis.resonance.bkgfit import BinnedData, FitError, FitResult, GoodnessOfFit, fit_function, goodness_of_fit
from analysis.resonance.families import (
    NEEDS_POSITIVE_RANGE,
    bernstein,
    canonical_family,
    family_orders,
    get_function,
    product,
)

log = logging.getLogger(__name__)


def quality_problem(fit: FitResult) -> str | None:
    """Why a background fit failed the core's quality guard (None when it passed)."""
    q = fit.quality
    return None if q.ok else ("; ".join(q.warnings) or f"covariance {q.covariance}")


def warn_fit_quality(fit: FitResult, where: str) -> None:
    """Log a background fit that failed the core's quality guard (INFO; :func:`build_envelope` and the f-test
    workflow summarise them in one warning line and in the ``fit_quality`` blocks of their JSON)."""
    problem = quality_problem(fit)
    if problem is not None:
        log.info("%s: %s fit quality: %s (attempts: %s)", where, fit.name, problem, ", ".join(fit.quality.attempts))


@dataclass
class OrderResult:
    """One order of a family: its fit, goodness of fit and the f-test p-value against the previous order."""

    order: int
    fit: FitResult
    gof: GoodnessOfFit
    ftest_pvalue: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly record (the keys issue 5 asks for plus diagnostics)."""
        return {
            "name": self.fit.name,
            "nll": self.fit.nll,
            "n_params": self.fit.n_params,
            "gof_pvalue": self.gof.pvalue,
            "gof_chi2": self.gof.chi2,
            "gof_ndof": self.gof.ndof,
            "gof_method": self.gof.method,
            "ftest_pvalue": self.ftest_pvalue,
            "converged": self.fit.valid,
            "normalisation_events": self.fit.norm,
            "parameters": self.fit.parameters_dict(),
            "fit_quality": self.fit.quality.to_dict(),
        }


@dataclass
class FamilyFTest:
    """The f-test of one family: every fitted order, the truncation order and the envelope orders."""

    family: str
    orders: dict[int, OrderResult]
    truncation_order: int | None
    envelope_orders: list[int]
    skipped: dict[int, str] = field(default_factory=dict)

    def envelope_fits(self) -> list[FitResult]:
        """The fits of the orders kept in the envelope."""
        return [self.orders[o].fit for o in self.envelope_orders]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly record: {"orders": {order: ...}, "truncation_order", "envelope_orders"}."""
        return {
            "orders": {str(o): r.to_dict() for o, r in self.orders.items()},
            "truncation_order": self.truncation_order,
            "envelope_orders": list(self.envelope_orders),
            "skipped_orders": {str(o): why for o, why in self.skipped.items()},
        }


def ftest_pvalue(nll_prev: float, nll: float, dof: int) -> float:
    """p-value of the likelihood-ratio improvement 2ΔlnL = nll_prev − nll with ``dof`` extra parameters."""
    delta = max(nll_prev - nll, 0.0)
    return float(stats.chi2.sf(delta, max(dof, 1)))


def ftest_family(data: BinnedData, family: str, *, pvalue_threshold: float = 0.05, envelope_threshold: float = 0.1,
                 gof_threshold: float = 0.01, max_order: int | None = None, seed: int = 0, n_toys: int = 1000,
                 n_random_starts: int = 3) -> FamilyFTest:
    """Run the f-test of one family on binned data (see the module docstring for the rules)."""
    fam = canonical_family(family)
    if fam in NEEDS_POSITIVE_RANGE and data.grid.lo <= 0:
        raise AnalysisError(f"{fam}: needs a positive observable range (lower edge {data.grid.lo:g})")
    result = FamilyFTest(fam, {}, None, [])
    prev: OrderResult | None = None
    truncation_done = False
    for order in family_orders(fam, max_order):
        spec = get_function(fam, order)
        if data.n_fit_bins <= spec.n_params + 1:
            result.skipped[order] = f"{data.n_fit_bins} fit bins too few for {spec.n_params} parameters"
            break
        try:
            fit = fit_function(spec, data, seed=seed, n_random_starts=n_random_starts,
                               lower=None if prev is None else prev.fit)
        except FitError as err:
            result.skipped[order] = str(err)
            break
        if prev is not None and fit.nll > prev.fit.nll + 1e-6:
            # nested families cannot get worse: retry once from the embedded lower-order solution only
            fit = _better(fit, fit_function(spec, data, seed=seed + 1, n_random_starts=n_random_starts + 4, lower=prev.fit))
        warn_fit_quality(fit, f"f-test {fam}")
        gof = goodness_of_fit(fit, data, seed=seed, n_toys=n_toys)
        p = None if prev is None else ftest_pvalue(prev.fit.nll, fit.nll, fit.n_params - prev.fit.n_params)
        current = OrderResult(order, fit, gof, p)
        result.orders[order] = current
        if not truncation_done:
            if p is None or p < pvalue_threshold:
                result.truncation_order = order
            else:
                truncation_done = True
        if truncation_done and (p is None or p >= envelope_threshold):
            break
        prev = current
    if result.truncation_order is not None:
        for order in sorted(result.orders):
            if order < result.truncation_order:
                continue
            rec = result.orders[order]
            if order > result.truncation_order and (rec.ftest_pvalue is None or rec.ftest_pvalue >= envelope_threshold):
                break
            if rec.fit.valid and rec.gof.pvalue >= gof_threshold:
                result.envelope_orders.append(order)
    return result


def _better(a: FitResult, b: FitResult) -> FitResult:
    """The fit with the lower −2lnL, preferring converged ones."""
    return a if (a.valid, -a.nll) >= (b.valid, -b.nll) else b


# ------------------------------------------------------------------------------------------------- 2D f-test
@dataclass
class FTest2D:
    """2D f-test over (order_1, order_2) of a product function: every visited node, the path and the result."""

    families: tuple[str, str]
    nodes: dict[tuple[int, int], OrderResult]
    path: list[tuple[int, int]]
    truncation_orders: tuple[int, int]
    pvalues: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly record."""
        return {
            "families": list(self.families),
            "nodes": {f"{a},{b}": r.to_dict() for (a, b), r in self.nodes.items()},
            "path": [list(p) for p in self.path],
            "truncation_orders": list(self.truncation_orders),
            "step_pvalues": self.pvalues,
        }


def _orders_2d(family: str, max_order: int | None) -> tuple[int, ...]:
    """Orders of a family for the 2D scan (Bernstein starts at 0, the constant)."""
    fam = canonical_family(family)
    orders = family_orders(fam, max_order)
    return ((0,) + orders) if fam == "bernstein" else orders


def _spec_2d(f1: str, o1: int, f2: str, o2: int):
    """Product function of two families at two orders."""
    s1 = bernstein(0) if (canonical_family(f1) == "bernstein" and o1 == 0) else get_function(f1, o1)
    s2 = bernstein(0) if (canonical_family(f2) == "bernstein" and o2 == 0) else get_function(f2, o2)
    return product(s1, s2)


def ftest_2d(data: BinnedData, families: Sequence[str] = ("exponential", "bernstein"), *,
             pvalue_threshold: float = 0.05, max_orders: tuple[int | None, int | None] = (5, 4), seed: int = 0,
             n_toys: int = 1000, n_random_starts: int = 3) -> FTest2D:
    """2D f-test: from the lowest (order_1, order_2), step to the neighbour (raising one order) with the most
    significant improvement while its p < ``pvalue_threshold``; the last node reached is the truncation."""
    f1, f2 = (canonical_family(f) for f in families)
    orders1, orders2 = _orders_2d(f1, max_orders[0]), _orders_2d(f2, max_orders[1])
    nodes: dict[tuple[int, int], OrderResult] = {}

    def node(i: int, j: int, lower: OrderResult | None) -> OrderResult | None:
        key = (orders1[i], orders2[j])
        if key in nodes:
            return nodes[key]
        spec = _spec_2d(f1, key[0], f2, key[1])
        if data.n_fit_bins <= spec.n_params + 1:
            return None
        try:
            fit = fit_function(spec, data, seed=seed, n_random_starts=n_random_starts,
                               lower=None if lower is None else lower.fit)
        except FitError:
            return None
        warn_fit_quality(fit, f"2D f-test {f1} x {f2}")
        gof = goodness_of_fit(fit, data, seed=seed, n_toys=n_toys)
        p = None if lower is None else ftest_pvalue(lower.fit.nll, fit.nll, fit.n_params - lower.fit.n_params)
        nodes[key] = OrderResult(spec.order, fit, gof, p)
        return nodes[key]

    i = j = 0
    current = node(0, 0, None)
    if current is None:
        raise FitError(f"2D f-test {f1} x {f2}: the lowest orders could not be fitted")
    path = [(orders1[0], orders2[0])]
    pvalues: dict[str, float] = {}
    while True:
        candidates = []
        for di, dj in ((1, 0), (0, 1)):
            ni, nj = i + di, j + dj
            if ni >= len(orders1) or nj >= len(orders2):
                continue
            rec = node(ni, nj, current)
            if rec is None:
                continue
            p = ftest_pvalue(current.fit.nll, rec.fit.nll, rec.fit.n_params - current.fit.n_params)
            pvalues[f"{orders1[i]},{orders2[j]}->{orders1[ni]},{orders2[nj]}"] = p
            candidates.append((p, ni, nj, rec))
        if not candidates:
            break
        p, ni, nj, rec = min(candidates, key=lambda c: c[0])
        if p >= pvalue_threshold:
            break
        i, j, current = ni, nj, rec
        path.append((orders1[i], orders2[j]))
    return FTest2D((f1, f2), nodes, path, (orders1[i], orders2[j]), pvalues)


def ftest_table(results: dict[str, FamilyFTest]) -> list[dict[str, Any]]:
    """Flat rows (function, family, order, n_params, deviance, ftest p, gof p, fit status, truncation?, in envelope?).

    ``fit_status`` is "converged", "at bound" (a free parameter ended at its bound: the fit is a boundary point,
    e.g. a Laurent/power-law fraction at 0 or 1), "fit-quality warning" or "not converged"; ``reduces_to`` names the
    lower order of the same family with the same deviance (within 10⁻³) — the extra terms collapsed (a fraction at
    0, two equal exponents) and the function *reduces to the lower order*.  The f-test never prefers such an order
    (its improvement is 0, p = 1, so it cannot be the truncation order nor extend the envelope), and the envelope's
    best function (−2 ln L + correction · n_params) never picks it over the lower order, as in flashggFinalFit.

    ``function`` is the function's name as ``search.yml`` spells it (``dijet2``, ``exp1``, …); ``deviance`` is
    −2 ln(L/L_saturated) of the binned Poisson fit with the normalisation profiled (what the f-test differences).
    """
    rows = []
    for fam, res in results.items():
        lower: list[OrderResult] = []
        for order, rec in sorted(res.orders.items()):
            same = [r for r in lower if abs(r.fit.nll - rec.fit.nll) <= DEGENERATE_DEVIANCE]
            lower.append(rec)
            rows.append({
                "function": rec.fit.name,
                "family": fam,
                "order": order,
                "n_params": rec.fit.n_params,
                "deviance": round(rec.fit.nll, 4),
                "ftest_pvalue": None if rec.ftest_pvalue is None else float(f"{rec.ftest_pvalue:.4g}"),
                "gof_pvalue": float(f"{rec.gof.pvalue:.4g}"),
                "gof_method": rec.gof.method,
                "converged": rec.fit.valid,
                "fit_ok": rec.fit.quality.ok,
                "fit_status": fit_status(rec.fit),
                "parameters_at_bounds": ", ".join(rec.fit.quality.at_bounds),
                "reduces_to": same[0].fit.name if same else None,
                "truncation": order == res.truncation_order,
                "in_envelope": order in res.envelope_orders,
            })
    return rows


DEGENERATE_DEVIANCE = 1e-3  # |Δ deviance| below which a higher order "reduces to" a lower one of its family


def fit_status(fit: FitResult) -> str:
    """"converged", "at bound", "fit-quality warning" or "not converged" (the f-test table's fit column)."""
    if not fit.valid:
        return "not converged"
    if not fit.quality.ok:
        return "fit-quality warning"
    return "at bound" if fit.quality.at_bounds else "converged"


def table_markdown(rows: list[dict[str, Any]]) -> str:
    """Markdown table of f-test rows ("converged" column: ✓, "at bound (names)", …; "note": reduces to …)."""
    cols = ["function", "family", "order", "n_params", "deviance", "ftest_pvalue", "gof_pvalue", "gof_method", "converged",
            "truncation", "in_envelope", "note"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            if c == "converged":
                status = r.get("fit_status") or ("converged" if v else "not converged")
                cells.append("✓" if status == "converged" else (
                    f"at bound ({r['parameters_at_bounds']})" if status == "at bound" and r.get("parameters_at_bounds")
                    else status))
                continue
            if c == "note":
                cells.append(f"reduces to {r['reduces_to']}" if r.get("reduces_to") else "")
                continue
            cells.append("–" if v is None else ("✓" if v is True else ("" if v is False else (f"{v:.3f}" if isinstance(v, float) and c == "deviance" else str(v)))))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def best_of(fits: Sequence[FitResult], correction: float = 1.0) -> FitResult:
    """The fit minimising −2lnL + correction · n_params (discrete profiling's choice)."""
    if not fits:
        raise FitError("no background function available")
    return min(fits, key=lambda f: f.nll + correction * f.n_params)


__all__ = [
    "DEGENERATE_DEVIANCE",
    "FTest2D",
    "FamilyFTest",
    "OrderResult",
    "best_of",
    "fit_status",
    "ftest_2d",
    "ftest_family",
    "ftest_pvalue",
    "ftest_table",
    "table_markdown",
]
