"""Kernel-density ratio estimate of the reweighting function (the seed's to-do), for comparison with the spline.

r(x) = [Σ_b D_b K_h(x − x̄_b)] / [s Σ_b M_b K_h(x − x̄_b)] with Gaussian K, fine-binned data* (D) and MC (M)
placed at their weighted bin means x̄_b, s the MC→data* normalisation. Boundary effects are the
same in numerator and denominator and cancel to first order in the ratio. The band propagates the
per-bin variances of D and M linearly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KDERatio:
    """A kernel-density ratio on fine-binned inputs."""

    centers: np.ndarray
    data: np.ndarray
    data_var: np.ndarray
    mc: np.ndarray
    mc_var: np.ndarray
    norm: float
    bandwidth: float

    def _kernel(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64)[:, None] - self.centers[None, :]) / self.bandwidth
        return np.exp(-0.5 * z * z)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """r(x)."""
        k = self._kernel(x)
        return (k @ self.data) / (self.norm * (k @ self.mc))

    def band(self, x: np.ndarray) -> np.ndarray:
        """Pointwise 1σ of r(x) (numerator and denominator independent)."""
        k = self._kernel(x)
        num, den = k @ self.data, k @ self.mc
        r = num / (self.norm * den)
        rel2 = (k * k) @ self.data_var / num**2 + (k * k) @ self.mc_var / den**2
        return np.abs(r) * np.sqrt(rel2)


def silverman_bandwidth(centers: np.ndarray, weights: np.ndarray, n_entries: float) -> float:
    """Silverman's rule 0.9·min(σ, IQR/1.34)·n^(−1/5) from a weighted fine-binned distribution."""
    w = np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    total = w.sum()
    mean = (w * centers).sum() / total
    sigma = np.sqrt((w * (centers - mean) ** 2).sum() / total)
    cdf = np.cumsum(w) / total
    iqr = np.interp(0.75, cdf, centers) - np.interp(0.25, cdf, centers)
    spread = min(sigma, iqr / 1.34) if iqr > 0 else sigma
    return float(0.9 * spread * max(n_entries, 1.0) ** -0.2)


def kde_ratio(centers: np.ndarray, data: np.ndarray, data_var: np.ndarray, mc: np.ndarray, mc_var: np.ndarray,
              norm: float, mc_entries: np.ndarray, bandwidth: float | None = None) -> KDERatio:
    """Build the ratio estimate; ``bandwidth`` None → Silverman's rule on the MC."""
    h = bandwidth if bandwidth is not None else silverman_bandwidth(centers, mc, float(np.sum(mc_entries)))
    keep = (np.asarray(mc) != 0) | (np.asarray(data) != 0)
    return KDERatio(np.asarray(centers)[keep], np.asarray(data)[keep], np.asarray(data_var)[keep],
                    np.asarray(mc)[keep], np.asarray(mc_var)[keep], float(norm), float(h))
