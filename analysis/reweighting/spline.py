"""C¹ piecewise-quadratic reweighting function with exact bin-integral constraints (one linear system).

In bin i, f(x) = A_i t² + B_i t + C_i with t = x − e_i (e_i the bin's lower edge). The 3N coefficients
solve one linear system: the N weighted-integral constraints Σ_j f(x_j) w_j = k_i Σ_j w_j (written with
the bin's weight moments S0 = Σw, S1 = Σw·t, S2 = Σw·t²), continuity of f and f′ at the N−1 inner edges,
and two end conditions: f″ equal in the first two and in the last two bins (N ≥ 3; a global quadratic
is then reproduced exactly), a single straight line for N = 2, a constant for N = 1. Outside
[e_0, e_N] the function is held at its edge values. Since the coefficients are linear in k, the
statistical covariance of k propagates exactly to a pointwise band.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from analysis.errors import AnalysisError


@dataclass(frozen=True)
class QuadraticSpline:
    """Piecewise quadratic f with local coefficients ``coef[i] = (A_i, B_i, C_i)`` and response ``gain``."""

    edges: np.ndarray  # (N+1,)
    coef: np.ndarray  # (N, 3) in t = x − e_i
    gain: np.ndarray  # (N, 3, N): d coef / d k

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return len(self.edges) - 1

    def _locate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bin index and local coordinate t (x clamped to the edge range)."""
        xc = np.clip(np.asarray(x, dtype=np.float64), self.edges[0], self.edges[-1])
        idx = np.clip(np.searchsorted(self.edges, xc, side="right") - 1, 0, self.n_bins - 1)
        return idx, xc - self.edges[idx]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """f(x)."""
        i, t = self._locate(x)
        a, b, c = self.coef[i].T
        return (a * t + b) * t + c

    def derivative(self, x: np.ndarray) -> np.ndarray:
        """f′(x) inside the edge range (0 outside, where f is held constant)."""
        x = np.asarray(x, dtype=np.float64)
        i, t = self._locate(x)
        inside = (x >= self.edges[0]) & (x <= self.edges[-1])
        return np.where(inside, 2.0 * self.coef[i, 0] * t + self.coef[i, 1], 0.0)

    def basis(self, x: np.ndarray) -> np.ndarray:
        """∂f(x)/∂k_j for every point: shape (len(x), N)."""
        i, t = self._locate(x)
        phi = np.stack([t * t, t, np.ones_like(t)], axis=1)  # (n, 3)
        return np.einsum("nc,ncj->nj", phi, self.gain[i])

    def band(self, x: np.ndarray, cov_k: np.ndarray) -> np.ndarray:
        """Pointwise 1σ of f(x) for a covariance of the k_i."""
        g = self.basis(x)
        return np.sqrt(np.clip(np.einsum("nj,jk,nk->n", g, cov_k, g), 0.0, None))

    def coef_covariance(self, cov_k: np.ndarray) -> np.ndarray:
        """(N, 3, 3) covariance of each bin's (A, B, C)."""
        return np.einsum("icj,jk,idk->icd", self.gain, cov_k, self.gain)

    def weighted_integrals(self, s0: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
        """Σ_j f(x_j) w_j per bin from the bin's moments about its lower edge."""
        return self.coef[:, 0] * s2 + self.coef[:, 1] * s1 + self.coef[:, 2] * s0

    def global_coefficients(self) -> np.ndarray:
        """(a_i, b_i, c_i) of f = a x² + b x + c in each bin (the seed's parametrisation)."""
        e = self.edges[:-1]
        a, b, c = self.coef.T
        return np.stack([a, b - 2 * a * e, a * e * e - b * e + c], axis=1)


def fit_spline(edges: np.ndarray, s0: np.ndarray, s1: np.ndarray, s2: np.ndarray, k: np.ndarray) -> QuadraticSpline:
    """Solve the constraint system for bin targets ``k`` given each bin's MC weight moments about its lower edge."""
    edges = np.asarray(edges, dtype=np.float64)
    n = len(edges) - 1
    s0, s1, s2, k = (np.asarray(a, dtype=np.float64) for a in (s0, s1, s2, k))
    if n < 1 or not (len(s0) == len(s1) == len(s2) == len(k) == n):
        raise AnalysisError(f"spline: need one moment triple and one target per bin, got {n} bins")
    if np.any(np.diff(edges) <= 0):
        raise AnalysisError("spline: bin edges must increase")
    if np.any(s0 <= 0):
        raise AnalysisError(f"spline: bin {int(np.flatnonzero(s0 <= 0)[0])} has no positive MC weight")
    h = np.diff(edges)
    m1, m2 = s1 / s0 / h, s2 / s0 / h**2  # moments of τ = t/h ∈ [0, 1]
    mat = np.zeros((3 * n, 3 * n))
    rhs = np.zeros((3 * n, n))  # RHS = rhs @ k
    row = 0
    for i in range(n):  # integral constraints (normalised by S0)
        mat[row, 3 * i: 3 * i + 3] = (m2[i], m1[i], 1.0)
        rhs[row, i] = 1.0
        row += 1
    for i in range(n - 1):  # value and slope continuity at e_{i+1}
        mat[row, 3 * i: 3 * i + 3] = (1.0, 1.0, 1.0)
        mat[row, 3 * (i + 1) + 2] = -1.0
        row += 1
        mat[row, 3 * i: 3 * i + 2] = (2.0, 1.0)
        mat[row, 3 * (i + 1) + 1] = -h[i] / h[i + 1]
        row += 1
    if n == 1:
        mat[row, 0], mat[row + 1, 1] = 1.0, 1.0
    elif n == 2:
        mat[row, 0], mat[row + 1, 3] = 1.0, 1.0
    else:
        mat[row, 0], mat[row, 3] = 1.0, -(h[0] / h[1]) ** 2
        mat[row + 1, 3 * (n - 2)], mat[row + 1, 3 * (n - 1)] = 1.0, -(h[n - 2] / h[n - 1]) ** 2
    gain_tau = scipy.linalg.solve(mat, rhs)  # (3N, N)
    scale = np.stack([1.0 / h**2, 1.0 / h, np.ones(n)], axis=1)  # τ-coefficients → t-coefficients
    gain = gain_tau.reshape(n, 3, n) * scale[:, :, None]
    coef = gain @ k
    return QuadraticSpline(edges, coef, gain)
