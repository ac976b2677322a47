"""``reweight.yml``: the seed's options (basePath, weight, selection, reweightVar, minBinWidth, reweightSample,
constSample, component selections, ttbar_Reweight, NormFactor_*) plus binning, smoothing and safety settings.
Validated once at the boundary; unknown keys are errors. Defaults reproduce the single-lepton setup.

Smoothing (see ``analysis.reweighting.smooth``): ``method: polynomial`` (default) fits polynomials of order
0..``maxOrder`` in HT_all to the k_i by weighted least squares, combined by ``orderSelection`` (``aic_average``:
Akaike-weighted average with the model-choice uncertainty in the band; ``aic`` or ``ftest``: one order);
``method: exact_integral`` is the seed's C¹ piecewise quadratic that keeps every bin integral.
Bins are merged until each k_i reaches ``targetRelError`` (as well as ``minEvents``/``minMCEntries``/
``minBinWidth``). Outside the populated HT_all range the correction follows ``outOfRange`` (``hold``: the edge
value; ``unity``: 1 with an uncertainty covering the edge value); nominal, up and down are clipped to ``bounds``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictStr, StringConstraints, field_validator, model_validator

from analysis.config import load_yaml
from analysis.errors import ConfigError, UserError
from analysis.option_model import OptionModel
from fileset.expr import parse
from processors.ht_reweighting import EVENT_VARIABLES, RegionSpec

COMPONENTS = ("ttbb", "ttb", "ttc", "ttlight")
OTHER_PROCESSES = ("single_top_s_chan", "single_top_t_chan", "single_top_tW", "wjets")

Expr = Annotated[StrictStr, StringConstraints(min_length=1)]
Name = Annotated[StrictStr, StringConstraints(min_length=1)]
Positive = Annotated[float, Field(gt=0)]
NormFactor = Positive | Annotated[dict[str, Positive], Field(min_length=1)]
_LOGIC = {"selection", "ttbb_selection", "ttb_selection", "ttc_selection", "ttlight_selection"}


class ReweightConfig(OptionModel):
    """``reweight.yml``, defined once: every key, its type, bounds and default (the single-lepton 5j3b setup).

    Expressions (``weight``, ``selection``, ``<component>_selection``, ``ttbar_Reweight``) are checked by the
    safe expression parser; cross-key rules: ``nJetsBins`` strictly increasing, ``reweightSample`` ⊂ ttbar
    components and disjoint from ``constSample``, ``bounds`` = [floor < 1 < ceiling], ``htMax`` a multiple of
    ``htBinWidth`` with at most 2000 fine bins. Units: GeV for pT, HT and widths.
    """

    WHAT = "config"

    basePath: StrictStr | None = None
    weight: Expr = "1"
    selection: Expr = "nLeptons == 1 and nJets >= 5 and nBTags >= 3"
    reweightVar: Literal["HT_all"] = "HT_all"
    minBinWidth: Positive = 50.0
    minEvents: float = Field(200.0, ge=0)
    minMCEntries: int = Field(20, ge=0)
    targetRelError: float | None = Field(0.1, gt=0, le=1)
    method: Literal["polynomial", "exact_integral"] = "polynomial"
    maxOrder: int = Field(3, ge=0, le=3)
    orderSelection: Literal["aic", "aic_average", "ftest"] = "aic_average"
    ftestAlpha: float = Field(0.05, gt=0, lt=1)
    outOfRange: Literal["hold", "unity"] = "hold"
    bounds: list[Positive] = Field([0.05, 5.0], min_length=2, max_length=2)
    outputFile: Annotated[StrictStr, StringConstraints(pattern=r"^[^/\\]+\.json$")] = "ht_reweighting.json"
    reweightSample: list[Name] = Field(["ttb", "ttbb"], min_length=1)
    constSample: list[Name] = ["ttc", "ttlight", *OTHER_PROCESSES]
    ttbb_selection: Expr = "hfClass == 3"
    ttb_selection: Expr = "hfClass == 2"
    ttc_selection: Expr = "hfClass == 1"
    ttlight_selection: Expr = "hfClass == 0"
    ttbar_Reweight: Expr = "1"
    NormFactor_ttbb: NormFactor = 1.0
    NormFactor_ttb: NormFactor = 1.0
    NormFactor_ttc: NormFactor = 1.0
    NormFactor_ttlight: NormFactor = 1.0
    nJetsBins: list[Annotated[int, Field(ge=0, le=15)]] = Field([5, 6, 7], min_length=1)
    normalisation: Literal["inclusive", "per_njets"] = "inclusive"
    alternativeSamples: list[Name] = ["scaleup", "scaledown", "ME_var", "PS_var"]
    mcStatError: StrictBool = True
    kdeBandwidth: Positive | None = None
    closureBinWidth: Positive = 50.0
    jetPt: float = Field(25.0, ge=0)
    leptonPt: float = Field(25.0, ge=0)
    btagCut: float = 0.5
    htBinWidth: Positive = 10.0
    htMax: Positive = 4000.0
    dataProcess: Name = "data"
    componentProcess: Name = "ttbar"

    @field_validator("reweightSample", "constSample", "alternativeSamples")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        """Each name once."""
        if len(set(value)) != len(value):
            raise ValueError(f"repeated name in {value}")
        return value

    @field_validator("weight", "selection", "ttbb_selection", "ttb_selection", "ttc_selection", "ttlight_selection",
                     "ttbar_Reweight")
    @classmethod
    def _expression(cls, value: str, info: Any) -> str:
        """A safe expression of the event variables (``and``/``or``/``not`` only in selections)."""
        try:
            parse(value, EVENT_VARIABLES, allow_logic=info.field_name in _LOGIC, what="expression")
        except UserError as err:
            raise ValueError(str(err)) from None
        return value

    @model_validator(mode="after")
    def _together(self) -> "ReweightConfig":
        """Cross-key rules."""
        bins = self.nJetsBins
        problems = []
        if any(b >= a for a, b in zip(bins[1:], bins[:-1])):
            problems.append(f"nJetsBins: must be strictly increasing, got {bins}")
        overlap = set(self.reweightSample) & set(self.constSample)
        if overlap:
            problems.append(f"reweightSample and constSample share {sorted(overlap)}")
        lo, hi = self.bounds
        if not lo < 1.0 < hi:
            problems.append(f"bounds: need floor < 1 < ceiling, got [{lo:g}, {hi:g}]")
        bad = [c for c in self.reweightSample if c not in COMPONENTS]
        if bad:
            problems.append(f"reweightSample: {bad} are not ttbar components ({', '.join(COMPONENTS)})")
        n_fine = self.htMax / self.htBinWidth
        if n_fine > 2000 or abs(n_fine - round(n_fine)) > 1e-9:
            problems.append("htMax must be a multiple of htBinWidth with at most 2000 fine bins")
        if problems:
            raise ValueError("; ".join(problems))
        return self


DEFAULTS: dict[str, Any] = ReweightConfig().model_dump()


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The reweighting options: defaults, updated from a YAML file and then ``overrides``, validated as a whole
    by :class:`ReweightConfig`.

    Args:
        path: ``reweight.yml`` (None: defaults only).
        overrides: key → value, applied after the file.

    Returns:
        Every option by its key (a plain dict, as the derivation reads it).

    Raises:
        ConfigError: unreadable file, or every unknown key / invalid value in one line naming the file and keys.
    """
    doc: dict[str, Any] = {}
    source = "reweight config"
    if path is not None:
        doc = load_yaml(path)
        source = str(path)
    return ReweightConfig.make({**doc, **(overrides or {})}, source=source).model_dump()


def check_sample_names(cfg: dict[str, Any], fileset_doc: dict[str, Any], *, source: str = "reweight config",
                       fileset: str = "fileset") -> list[str]:
    """Every sample the config names must be in the fileset; checked before any processing.

    ``dataProcess``, ``componentProcess`` and the non-ttbar ``constSample`` entries must be processes with a
    ``nominal`` sample; ``alternativeSamples`` must be variations of ``componentProcess``; the keys of a
    ``NormFactor_*`` mapping must be ``nominal`` or such a variation.

    Args:
        cfg: validated config (:func:`load_config`).
        fileset_doc: the ``ntuples.json`` document ``{process: {variation: {...}}}``.
        source, fileset: names of the config and of the fileset json for the message.

    Returns:
        The alternative samples to derive: all of ``alternativeSamples``. Only when that key keeps its default
        (not named by the user) are the default variations the fileset lacks left out.

    Raises:
        ConfigError: one line naming the key, the unknown name and the available ones.
    """
    processes = sorted(p for p, variations in fileset_doc.items() if "nominal" in variations)

    def need_process(key: str, name: str, hint: str = "") -> None:
        if name not in processes:
            raise ConfigError(f"{source}: {key}: {name!r} is not a process with a nominal sample in {fileset} "
                              f"(available: {', '.join(processes) or 'none'}){hint}")

    need_process("dataProcess", cfg["dataProcess"], "; make pseudo-data with `ana generate agc --inject-ht`")

    need_process("componentProcess", cfg["componentProcess"])
    for name in cfg["constSample"]:
        if name not in COMPONENTS:
            need_process("constSample", name)
    variations = sorted(v for v in fileset_doc[cfg["componentProcess"]] if v != "nominal")
    alternatives = list(cfg["alternativeSamples"])
    unknown = [v for v in alternatives if v not in variations]
    if unknown and alternatives == DEFAULTS["alternativeSamples"]:
        alternatives = [v for v in alternatives if v in variations]
    elif unknown:
        raise ConfigError(f"{source}: alternativeSamples: {', '.join(map(repr, unknown))} "
                          f"{'is not a sample' if len(unknown) == 1 else 'are not samples'} of "
                          f"{cfg['componentProcess']!r} in {fileset} (available: {', '.join(variations) or 'none'})")
    for component in COMPONENTS:
        value = cfg[f"NormFactor_{component}"]
        bad = [k for k in value if k != "nominal" and k not in variations] if isinstance(value, dict) else []
        if bad:
            raise ConfigError(f"{source}: NormFactor_{component}: {', '.join(map(repr, bad))} "
                              f"{'is not a sample' if len(bad) == 1 else 'are not samples'} of "
                              f"{cfg['componentProcess']!r} in {fileset} (available: nominal"
                              f"{''.join(', ' + v for v in variations)})")
    return alternatives


def norm_factor(cfg: dict[str, Any], component: str, variation: str) -> float:
    """NormFactor_<component> for a ttbar sample variation (a number applies to all; a mapping falls back to nominal)."""
    value = cfg[f"NormFactor_{component}"]
    if isinstance(value, dict):
        return float(value.get(variation, value.get("nominal", 1.0)))
    return float(value)


def region_spec(cfg: dict[str, Any]) -> RegionSpec:
    """The processor's derivation-region settings from a config."""
    const_tt = [c for c in cfg["constSample"] if c in ("ttc", "ttlight")]
    return RegionSpec(
        selection=cfg["selection"], weight=cfg["weight"], jet_pt=cfg["jetPt"], lepton_pt=cfg["leptonPt"],
        btag=cfg["btagCut"], ht_bin_width=cfg["htBinWidth"], ht_max=cfg["htMax"], njets_max=15,
        component_process=cfg["componentProcess"],
        components={c: cfg[f"{c}_selection"] for c in COMPONENTS},
        component_weights={c: cfg["ttbar_Reweight"] for c in const_tt} if cfg["ttbar_Reweight"].strip() != "1" else {},
    )
