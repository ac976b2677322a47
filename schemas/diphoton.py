"""DiphotonSchema: NanoEvents view of the X→γγ tutorial CSV tables (two photons per event as PtEtaPhiM vectors).

The CSV is read once with pandas (pyarrow engine), validated, and converted into an in-memory column
source that ``coffea.nanoevents.NanoEventsFactory.from_preloaded`` accepts; the schema then zips the
per-event photon columns into a two-element ``photon`` collection with mass 0, so that
``events.photon[:, 0] + events.photon[:, 1]`` is the diphoton four-vector.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import awkward as ak
import numpy as np
import pandas as pd
from coffea.nanoevents import NanoEventsFactory, transforms
from coffea.nanoevents.mapping.preloaded import SimplePreloadedColumnSource
from coffea.nanoevents.schemas.base import zip_forms

from schemas.errors import SchemaError
from schemas.flat import FlatCollectionsSchema

PHOTON_COLUMNS = (
    "photon1_pT", "photon2_pT", "photon1_phi", "photon2_phi", "photon1_eta", "photon2_eta",
)
REQUIRED_COLUMNS = PHOTON_COLUMNS + ("n_jets", "n_leptons", "photon1_isolation", "photon2_isolation")
OPTIONAL_COLUMNS = ("dEta", "average_jet_pT", "lead_jets_dPhi", "missing_energy")
ALL_COLUMNS = (
    "photon1_pT", "photon2_pT", "photon1_phi", "photon2_phi", "photon1_eta", "photon2_eta", "dEta",
    "n_jets", "average_jet_pT", "lead_jets_dPhi", "n_leptons", "photon1_isolation", "photon2_isolation",
    "missing_energy",
)
# per-photon fields: CSV stem -> collection field
PHOTON_FIELDS = {"pT": "pt", "eta": "eta", "phi": "phi", "isolation": "isolation"}


def read_diphoton_csv(path: str | Path) -> pd.DataFrame:
    """Read one tutorial-format CSV; every required column numeric and finite, else a one-line SchemaError."""
    p = Path(path)
    if not p.is_file():
        raise SchemaError(f"{p}: file not found")
    try:
        df = pd.read_csv(p, index_col=0, engine="pyarrow")
    except Exception as err:  # pyarrow raises several types for malformed text
        raise SchemaError(f"{p}: cannot parse CSV: {str(err).splitlines()[0]}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise SchemaError(f"{p}: missing required column(s) {', '.join(missing)}")
    if len(df) == 0:
        raise SchemaError(f"{p}: no events (empty table)")
    present = [c for c in ALL_COLUMNS if c in df.columns]
    out = {}
    for col in present:
        raw = df[col]
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SchemaError(
                f"{p}: column {col}, row {i} (line {i + 2}): value {str(raw.iloc[i])!r} is not a finite number"
            )
        out[col] = values
    return pd.DataFrame(out)


def column_source(df: pd.DataFrame, name: str) -> SimplePreloadedColumnSource:
    """Convert a validated table to a preloaded NanoEvents column source (photons as 2-element lists)."""
    n = len(df)
    counts = np.full(n, 2, dtype=np.int64)
    columns: dict[str, ak.Array] = {"nphoton": ak.Array(counts)}
    for stem, field in PHOTON_FIELDS.items():
        pair = np.stack([df[f"photon1_{stem}"].to_numpy(), df[f"photon2_{stem}"].to_numpy()], axis=1)
        columns[f"photon_{field}"] = ak.unflatten(pair.reshape(-1), counts)
    columns["photon_mass"] = ak.unflatten(np.zeros(2 * n), counts)
    for col in df.columns:
        if col.startswith(("photon1_", "photon2_")):
            continue
        columns[col] = ak.Array(df[col].to_numpy())
    uuid = hashlib.sha1(f"{name}:{n}".encode()).hexdigest()
    return SimplePreloadedColumnSource(columns, uuid, n, "diphoton")


class DiphotonSchema(FlatCollectionsSchema):
    """``photon``: PtEtaPhiM collection (pt, eta, phi, mass=0, isolation); other columns stay event-level."""


    @staticmethod
    def _build_collections(branch_forms: dict) -> dict:
        """Zip ``photon_*`` lists into the photon collection using the ``nphoton`` counter."""
        needed = ["nphoton"] + [f"photon_{f}" for f in ("pt", "eta", "phi", "mass")]
        missing = [k for k in needed if k not in branch_forms]
        if missing:
            raise SchemaError(f"diphoton column source is missing {', '.join(missing)}")
        offsets = transforms.counts2offsets_form(branch_forms["nphoton"])
        fields = {k[len("photon_"):]: v for k, v in branch_forms.items() if k.startswith("photon_")}
        output = {"photon": zip_forms(fields, "photon", "PtEtaPhiMLorentzVector", offsets=offsets)}
        for k, v in branch_forms.items():
            if not k.startswith("photon_") and k != "nphoton":
                output[k] = v
        return output



def events_from_frame(df: pd.DataFrame, name: str, metadata: dict | None = None) -> ak.Array:
    """Build eager NanoEvents from a validated table."""
    source = column_source(df, name)
    factory = NanoEventsFactory.from_preloaded(
        source, schemaclass=DiphotonSchema, metadata={"dataset": name, **(metadata or {})}
    )
    return factory.events()


def load_events(path: str | Path, metadata: dict | None = None) -> ak.Array:
    """Read, validate and convert one CSV to NanoEvents (``events.photon`` etc.)."""
    p = Path(path)
    return events_from_frame(read_diphoton_csv(p), str(p.resolve()), metadata)
