"""The options of ``ana search``: the search YAML defined once (:class:`SearchConfig`), read by :func:`load_config`.

Keys, types, bounds and defaults live here; file paths are resolved relative to the config file and must exist.
Every problem comes back in one line naming the file and the key (``ConfigError``, exit 2 in the CLI). Validates
only: nothing is computed or written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from analysis.config import load_yaml
from analysis.option_model import OptionModel
from analysis.resonance import likelihood as lk
from processors.diphoton import FEATURES, REQUIRED_FEATURES

__all__ = ["BackgroundOptions", "PB_PER_FB", "SearchConfig", "SelectionOptions", "SignalOptions", "load_config"]

PB_PER_FB = 1000.0
PositiveFloat = Annotated[float, Field(gt=0)]
Efficiency = Annotated[float, Field(gt=0, le=1)]
Window = tuple[PositiveFloat, PositiveFloat]


def _existing_file(value: Path, info: ValidationInfo) -> Path:
    """A path relative to the config file (``context["base"]``), which must exist."""
    if not str(value) or str(value) == ".":
        raise ValueError("empty path")
    base = (info.context or {}).get("base")
    q = value if value.is_absolute() or base is None else Path(base) / value
    if base is not None and not q.is_file():
        raise ValueError(f"file not found: {q}")
    return q


class SignalOptions(OptionModel):
    """``signal:`` — cross-section [pb] before the filter efficiency, filter efficiency in (0, 1], and one
    simulated sample per mass point (``mass in GeV: file``)."""

    cross_section_pb: PositiveFloat
    filter_efficiency: Efficiency
    samples: dict[PositiveFloat, Path] = Field(min_length=1)

    @field_validator("samples")
    @classmethod
    def _samples(cls, value: dict[float, Path], info: ValidationInfo) -> dict[float, Path]:
        """Files relative to the config, existing; sorted by mass."""
        out = {}
        for m, f in sorted(value.items()):
            try:
                out[m] = _existing_file(f, info)
            except ValueError as err:
                raise ValueError(f"{m:g}: {err}") from None
        return out


class BackgroundOptions(OptionModel):
    """``background:`` — simulated background (cross-section [pb], filter efficiency, file) and the model:
    ``parametric`` (one function, chosen on simulation unless ``function`` is given) or the discrete-profiling
    ``envelope`` over ``families``."""

    cross_section_pb: PositiveFloat
    filter_efficiency: Efficiency
    file: Path
    model: Literal["parametric", "envelope"] = "parametric"
    function: str | None = None
    families: list[str] | None = Field(None, min_length=1)

    check_file = field_validator("file")(_existing_file)

    @field_validator("function")
    @classmethod
    def _function(cls, value: str | None) -> str | None:
        """One of the parametric families."""
        if value is not None and value not in lk.FAMILY_ORDER:
            raise ValueError(f"unknown function {value!r} (choose from {', '.join(lk.FAMILY_ORDER)})")
        return value


class SelectionOptions(OptionModel):
    """``selection:`` — ``cuts`` (optimised rectangular cuts, default), ``classifier`` or ``none``, on the
    photon ``variables`` (default: the processor's required features)."""

    method: Literal["cuts", "classifier", "none"] = "cuts"
    variables: tuple[str, ...] = Field(REQUIRED_FEATURES, min_length=1)

    @field_validator("variables")
    @classmethod
    def _variables(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Known features, each once."""
        unknown = [v for v in value if v not in FEATURES]
        if unknown:
            raise ValueError(f"unknown variable(s) {', '.join(unknown)} (choose from {', '.join(FEATURES)})")
        if len(set(value)) != len(value):
            raise ValueError(f"repeated variable in {list(value)}")
        return value


class SearchConfig(OptionModel):
    """The search YAML, defined once: keys, types, bounds, defaults; paths resolved relative to the config file.

    Keys: ``luminosity_fb`` (> 0), ``sqrt_s_tev`` (13), ``mass_range_gev`` [lo, hi] searched, ``signal``,
    ``background``, ``data`` (file), ``fit_range_gev`` (default [max(lo − 200, 1), hi + 500]; must contain the
    mass range with sidebands), ``bin_width_gev`` (10), ``scan_step_gev`` (10), ``blind_margin_sigma`` (2, signal
    widths added to the blind window), ``selection``, ``global_toys`` (20), ``limit_validation_toys`` (200),
    ``seed`` (12345). The flat properties below (``mass_range``, ``signal_xsec_pb``, ...) are views of these keys.
    """

    WHAT = "config"

    luminosity_fb: PositiveFloat
    sqrt_s_tev: PositiveFloat = 13.0
    mass_range_gev: Window
    signal: SignalOptions
    background: BackgroundOptions
    data: Path
    fit_range_gev: Window | None = None
    bin_width_gev: PositiveFloat = 10.0
    scan_step_gev: PositiveFloat = 10.0
    blind_margin_sigma: float = Field(2.0, ge=0)
    selection: SelectionOptions = SelectionOptions()
    global_toys: int = Field(20, ge=0)
    limit_validation_toys: int = Field(200, ge=0)
    seed: int = Field(12345, ge=0)
    _source: Path | None = PrivateAttr(None)

    check_data = field_validator("data")(_existing_file)

    @model_validator(mode="after")
    def _ranges(self) -> "SearchConfig":
        """Mass range ordered, fit range containing it with sidebands."""
        lo, hi = self.mass_range_gev
        if not lo < hi:
            raise ValueError(f"mass_range_gev: lower edge {lo:g} must be below upper edge {hi:g}")
        f_lo, f_hi = self.fit_range
        if not (f_lo < lo and f_hi > hi):
            raise ValueError(f"fit_range_gev {[f_lo, f_hi]} must contain mass_range_gev {[lo, hi]} with sidebands")
        return self

    # views used by the search (one definition above; these only rename)
    @property
    def source(self) -> Path | None:
        """The config file."""
        return self._source

    @property
    def lumi_pb(self) -> float:
        """Integrated luminosity in pb⁻¹."""
        return self.luminosity_fb * PB_PER_FB

    @property
    def mass_range(self) -> tuple[float, float]:
        """Searched mass range [GeV]."""
        return self.mass_range_gev

    @property
    def fit_range(self) -> tuple[float, float]:
        """Fit range [GeV] (default: 200 GeV below, 500 GeV above the searched range, at least 1 GeV)."""
        lo, hi = self.mass_range_gev
        return self.fit_range_gev or (max(lo - 200.0, 1.0), hi + 500.0)

    @property
    def signal_xsec_pb(self) -> float:
        return self.signal.cross_section_pb

    @property
    def signal_filter_eff(self) -> float:
        return self.signal.filter_efficiency

    @property
    def signal_samples(self) -> dict[float, Path]:
        return self.signal.samples

    @property
    def bkg_xsec_pb(self) -> float:
        return self.background.cross_section_pb

    @property
    def bkg_filter_eff(self) -> float:
        return self.background.filter_efficiency

    @property
    def bkg_file(self) -> Path:
        return self.background.file

    @property
    def data_file(self) -> Path:
        return self.data

    @property
    def model(self) -> str:
        return self.background.model

    @property
    def function(self) -> str | None:
        return self.background.function

    @property
    def families(self) -> list[str] | None:
        return self.background.families

    @property
    def bin_width(self) -> float:
        return self.bin_width_gev

    @property
    def scan_step(self) -> float:
        return self.scan_step_gev

    @property
    def selection_method(self) -> str:
        return self.selection.method

    @property
    def selection_variables(self) -> tuple[str, ...]:
        return self.selection.variables


def load_config(path: str | Path) -> SearchConfig:
    """Read and validate the search YAML; resolve file paths relative to it.

    Raises:
        ConfigError: unreadable YAML, or every invalid/missing key and missing file in one line naming the file.
    """
    p = Path(path).resolve()
    cfg = SearchConfig.make(load_yaml(p), source=p, context={"base": p.parent})
    cfg._source = p
    return cfg
