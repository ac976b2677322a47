"""Asymptotic formulae of Cowan, Cranmer, Gross, Vitells, Eur. Phys. J. C 71 (2011) 1554 (arXiv:1007.1727).

Closed forms only (no fits): the Asimov significance of a counting experiment, CLs from q̃_μ and its
Asimov value, expected limits from σ_A, and p-value ↔ Z conversions.  Used by the pyhf-based core
(cross-checks) and by the parametric resonance likelihood, which has no pyhf model.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

BANDS = (-2, -1, 0, 1, 2)


def asimov_z(s: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """Median discovery significance of a counting experiment, Z_A = √(2((s+b) ln(1+s/b) − s)) (eq. 97).

    Args:
        s, b: expected signal and background counts (broadcastable; b ≤ 0 gives 0).
    """
    s = np.asarray(s, dtype=float)
    b = np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z2 = 2.0 * ((s + b) * np.log1p(s / b) - s)
    return np.sqrt(np.clip(np.where(b > 0, z2, 0.0), 0.0, None))


def z_from_p(p: np.ndarray | float) -> np.ndarray:
    """One-sided Gaussian significance Z = Φ⁻¹(1 − p) (p clipped to [10⁻³⁰⁰, 1])."""
    return stats.norm.isf(np.clip(p, 1e-300, 1.0))


def p_from_z(z: np.ndarray | float) -> np.ndarray:
    """One-sided p-value 1 − Φ(Z)."""
    return stats.norm.sf(z)


def cls_from_q(q: float, q_a: float) -> tuple[float, float, float]:
    """Asymptotic (CLs, CL_s+b, CL_b) for q̃_μ = q given its Asimov value q_A = μ²/σ_A² (eqs. 65–66).

    Returns:
        (CLs, CL_s+b, CL_b); q and q_A are clipped at 0 (q_A at 10⁻¹²).
    """
    q, q_a = max(q, 0.0), max(q_a, 1e-12)
    sq, sqa = np.sqrt(q), np.sqrt(q_a)
    if q <= q_a:
        clsb = stats.norm.sf(sq)
        clb = stats.norm.cdf(sqa - sq)
    else:
        clsb = stats.norm.sf((q + q_a) / (2 * sqa))
        clb = stats.norm.sf((q - q_a) / (2 * sqa))
    return float(clsb / max(clb, 1e-300)), float(clsb), float(clb)


def expected_cls(q_a: float) -> np.ndarray:
    """Expected CLs at −2σ…+2σ for Asimov q_A: Φ̄(√q_A − N)/Φ̄(−N), shape (5,)."""
    sqa = np.sqrt(max(q_a, 0.0))
    return np.array([stats.norm.sf(sqa - n) / stats.norm.sf(-n) for n in BANDS])


def expected_limits(sigma_a: float, alpha: float = 0.05) -> dict[int, float]:
    """Median and ±1σ/±2σ expected CLs limits: μ_N = σ_A (Φ⁻¹(1 − αΦ(N)) + N) (eq. 89 with CLs)."""
    return {n: float(sigma_a * (stats.norm.isf(alpha * stats.norm.cdf(n)) + n)) for n in BANDS}
