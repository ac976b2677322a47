"""A pyhf model and its data as a compiled −2 ln L with an analytic gradient (JAX), shared by every fit.

pyhf evaluates a model with whichever tensor backend is active.  :class:`Likelihood` traces
``−2·model.logpdf(θ, data)`` once under pyhf's JAX backend, compiles it and its gradient with
``jax.jit`` (data are an argument, so Asimov or toy datasets reuse the compiled code) and restores the
previous backend; afterwards every evaluation is a call of compiled code, independent of pyhf's global
backend.  Without JAX it falls back to pyhf's NumPy backend and Minuit's numerical derivatives.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyhf

from analysis.stats.parametric import NamedParameters

log = logging.getLogger(__name__)


def jax_available() -> bool:
    """True when ``jax`` can be imported (pyhf's JAX backend is usable)."""
    try:
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


def enable_compilation_cache(directory: str | Path | None = None) -> Path | None:
    """Keep the XLA programs JAX compiles for a likelihood on disk (JAX's persistent compilation cache).

    Compiling −2 ln L, its gradient and its Hessian for the AGC model costs ≈ 6 s CPU, of which a warm
    cache saves ≈ 4.5 s (tracing still runs); the cached programs are the same programs, so results are
    bit-identical with and without the cache. Like numba's ``cache=True``, this is for the ``ana`` commands
    (called by their CLI, never at import); in a notebook call it yourself if you want it.

    Args:
        directory: where to keep the programs; default ``$ANA_CACHE_DIR/jax``, else
            ``$XDG_CACHE_HOME/ana/jax``, else ``~/.cache/ana/jax``.

    Returns:
        The cache directory in use (JAX's own when one is already configured, e.g. by
        ``JAX_COMPILATION_CACHE_DIR``: left as it is), or None when ``ANA_JAX_CACHE=0`` is set or the
        directory cannot be created. JAX is not imported here: before its import the settings go into the
        environment variables JAX reads then.
    """
    if os.environ.get("ANA_JAX_CACHE", "1").strip().lower() in ("0", "no", "off", "false"):
        return None
    jax = sys.modules.get("jax")  # not imported here: a command that never compiles does not pay for it
    configured = jax.config.jax_compilation_cache_dir if jax is not None else os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if configured:
        return Path(configured)
    if directory is None:
        base = os.environ.get("ANA_CACHE_DIR") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "ana")
        directory = Path(base) / "jax"
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        log.debug("JAX compilation cache disabled: %s", err)
        return None
    settings = {"jax_compilation_cache_dir": str(path),
                "jax_persistent_cache_min_compile_time_secs": 0.0,  # also the many small programs
                "jax_persistent_cache_min_entry_size_bytes": 0}  # ~0.7 MB per model; delete the directory any time
    for name, value in settings.items():
        if jax is not None:
            try:
                jax.config.update(name, value)
            except AttributeError:  # an option this JAX version does not have
                log.debug("JAX has no option %s", name)
        else:  # read by JAX when it is first imported
            os.environ[name.upper()] = str(value)
    return path


@contextmanager
def pyhf_backend(name: str | None, optimizer: Any = None) -> Iterator[None]:
    """Temporarily switch pyhf's global tensor backend (``None``: keep it) and/or optimizer; restore both."""
    tensorlib, previous_optimizer = pyhf.get_backend()
    backend = tensorlib if name is None or name == tensorlib.name else name
    pyhf.set_backend(backend, optimizer if optimizer is not None else previous_optimizer)
    try:
        yield
    finally:
        pyhf.set_backend(tensorlib, previous_optimizer)


class Likelihood(NamedParameters):
    """−2 ln L(θ) of a pyhf model for its observed data (or any dataset of the same length).

    Attributes:
        model: the pyhf model.
        data: observed main data followed by auxiliary data, shape (n_main + n_aux,).
        labels: parameter names, pyhf's ``par_names`` (vector parameters as ``name[i]``).
        init, bounds, fixed: the model's suggested starting point, bounds and fixed flags, shape (n_par,).
        poi_index: index of the parameter of interest (None when the measurement has none).
        uses_jax: True when the gradient is analytic.
    """

    def __init__(self, model: pyhf.pdf.Model, data: Sequence[float], *, use_jax: bool | None = None) -> None:
        self.model = model
        self.data = np.asarray(data, dtype=np.float64)
        self.labels: list[str] = list(model.config.par_names)
        self.init = np.asarray(model.config.suggested_init(), dtype=np.float64)
        self.bounds = [tuple(float(x) for x in b) for b in model.config.suggested_bounds()]
        self.fixed = np.asarray(model.config.suggested_fixed(), dtype=bool)
        self.poi_index: int | None = model.config.poi_index
        self.uses_jax = jax_available() if use_jax is None else bool(use_jax and jax_available())
        self.n_nan = 0
        self._hessian_traced = False
        self._lock = threading.Lock()
        self._compile()

    def _compile(self) -> None:
        model = self.model
        if not self.uses_jax:
            def f_np(p: np.ndarray, d: np.ndarray) -> float:
                return float(-2.0 * np.asarray(model.logpdf(p, d))[0])

            self._f, self._g = f_np, None
            with pyhf_backend("numpy"):
                self._f(self.init, self.data)
            return
        import jax

        def f(p, d):
            return -2.0 * model.logpdf(p, d)[0]

        with pyhf_backend("jax"):
            self._jf = jax.jit(f)
            self._jg = jax.jit(jax.grad(f))
            self._jh = jax.jit(jax.hessian(f))
            # trace now, while pyhf's JAX backend is active (shapes and dtypes never change afterwards)
            self._jf(self.init, self.data).block_until_ready()
            self._jg(self.init, self.data).block_until_ready()
        self._f = lambda p, d: float(self._jf(p, d))
        self._g = lambda p, d: np.asarray(self._jg(p, d))

    def _args(self, pars: Sequence[float], data: Sequence[float] | None) -> tuple[np.ndarray, np.ndarray]:
        p = np.asarray(pars, dtype=np.float64)
        d = self.data if data is None else np.asarray(data, dtype=np.float64)
        return p, d

    def twice_nll(self, pars: Sequence[float], data: Sequence[float] | None = None) -> float:
        """−2 ln L at ``pars`` (shape (n_par,)) for ``data`` (default: the observed data); counts non-finite values."""
        value = self._f(*self._args(pars, data))
        if not np.isfinite(value):
            with self._lock:
                self.n_nan += 1
        return value

    @property
    def has_gradient(self) -> bool:
        """True when :meth:`grad` is analytic (JAX)."""
        return self._g is not None

    def grad(self, pars: Sequence[float], data: Sequence[float] | None = None) -> np.ndarray:
        """∂(−2 ln L)/∂θ, shape (n_par,); raises RuntimeError without JAX."""
        if self._g is None:
            raise RuntimeError("analytic gradient needs JAX")
        return self._g(*self._args(pars, data))

    def hessian(self, pars: Sequence[float], data: Sequence[float] | None = None) -> np.ndarray:
        """∂²(−2 ln L)/∂θ², shape (n_par, n_par) (JAX; traced on first use under pyhf's JAX backend)."""
        if not self.uses_jax:
            raise RuntimeError("analytic Hessian needs JAX")
        args = self._args(pars, data)
        if not self._hessian_traced:  # switching pyhf's backend costs ~30 ms: only for the one trace
            with pyhf_backend("jax"):
                h = np.asarray(self._jh(*args))
            self._hessian_traced = True
            return h
        return np.asarray(self._jh(*args))

    def expected_data(self, pars: Sequence[float], include_auxdata: bool = True) -> np.ndarray:
        """Expected main (+ auxiliary) data at ``pars`` with pyhf's NumPy backend, shape (n_main [+ n_aux],)."""
        with pyhf_backend("numpy"):
            return np.asarray(self.model.expected_data(np.asarray(pars, dtype=float), include_auxdata=include_auxdata),
                              dtype=float)

    def main_data(self, data: Sequence[float] | None = None) -> np.ndarray:
        """The main-measurement part of ``data`` (default: observed), shape (n_main,)."""
        d = self.data if data is None else np.asarray(data, dtype=float)
        return d[: self.model.config.nmaindata]
