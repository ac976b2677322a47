"""The fileset layer's documents as pydantic models: samples.yml, AGC-style fileset json, coffea-style fileset json.

pydantic is the project's one option/document-model tool (see :mod:`analysis.option_model`); these models only
validate — the loaders in :mod:`fileset.build` keep working on the plain parsed documents. Types are strict
(``"1.0"`` or ``true`` is not a number), floats finite, and every problem is reported in one line by
:func:`fileset.loaders.validate_model`.
"""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, RootModel, Tag
from typing_extensions import Annotated

__all__ = ["CoffeaFileset", "FilesetJson", "SamplesConfig"]

_STRICT = ConfigDict(strict=True, allow_inf_nan=False)
Positive = Annotated[float, Field(gt=0)]
NonEmptyStr = Annotated[str, Field(min_length=1)]


class SamplesConfig(BaseModel):
    """samples.yml: integrated luminosity (pb⁻¹), tree name, cross-section (pb) per process."""

    model_config = ConfigDict(**_STRICT, extra="forbid")
    luminosity_pb: Positive
    tree: str = "events"
    cross_sections_pb: dict[str, Positive]


class _FileEntry(BaseModel):
    """One file of an AGC-style fileset json: its path and number of events."""

    model_config = ConfigDict(**_STRICT, extra="allow")
    path: str
    nevts: Annotated[int, Field(ge=0)]


class _VariationEntry(BaseModel):
    """One (process, variation) of an AGC-style fileset json."""

    model_config = ConfigDict(**_STRICT, extra="allow")
    files: Annotated[list[_FileEntry], Field(min_length=1)]
    nevts_total: Optional[Annotated[int, Field(ge=0)]] = None
    pseudodata_scale: Optional[Annotated[float, Field(ge=0)]] = None
    format: Optional[Literal["ntuple", "nanoaod"]] = None


class FilesetJson(RootModel[Annotated[dict[str, Annotated[dict[str, _VariationEntry], Field(min_length=1)]],
                                      Field(min_length=1)]]):
    """AGC-style ``ntuples.json`` / ``nanoaod_inputs.json``: ``{process: {variation: {files: [...]}}}``."""

    model_config = _STRICT


class _CoffeaDataset(BaseModel):
    """One dataset of a coffea-style fileset: ``files`` as ``[paths]`` or ``{path: tree or null}``."""

    model_config = ConfigDict(**_STRICT, extra="forbid")
    # one branch checked, chosen by the input's type (its tag is dropped from error paths by validate_model)
    files: Annotated[Union[Annotated[list[NonEmptyStr], Field(min_length=1), Tag("list[path]")],
                           Annotated[dict[str, Optional[str]], Field(min_length=1), Tag("dict[path,tree]")]],
                     Discriminator(lambda v: "dict[path,tree]" if isinstance(v, dict) else "list[path]")]
    treename: Optional[NonEmptyStr] = None
    metadata: Optional[dict] = None


class CoffeaFileset(RootModel[Annotated[dict[str, _CoffeaDataset], Field(min_length=1)]]):
    """Coffea-style fileset json: ``{dataset: {files, treename, metadata}}``."""

    model_config = _STRICT
