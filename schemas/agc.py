"""AGCSchema: NanoEvents schema for the AGC flat ntuples (``number<obj>`` counters, ``<obj>_<field>`` branches)."""

from __future__ import annotations

from coffea.nanoevents import transforms
from coffea.nanoevents.schemas.base import zip_forms

from schemas.errors import SchemaError
from schemas.flat import FlatCollectionsSchema

COLLECTIONS = ("jet", "electron", "muon")
REQUIRED_FIELDS = {
    "jet": ("pt", "eta", "phi", "e", "mass", "btag"),
    "electron": ("pt", "eta", "phi", "e"),
    "muon": ("pt", "eta", "phi", "e"),
}
MET_FIELDS = ("pt", "phi")


class AGCSchema(FlatCollectionsSchema):
    """Jets and leptons as PtEtaPhiE Lorentz vectors (``_e`` becomes ``energy``; ``mass`` is derived), ``met`` a record."""


    @staticmethod
    def _build_collections(branch_forms: dict) -> dict:
        """Zip flat branches into collections, failing with a clear message on missing branches."""
        missing = []
        for name in COLLECTIONS:
            if f"number{name}" not in branch_forms:
                missing.append(f"number{name}")
            missing += [f"{name}_{f}" for f in REQUIRED_FIELDS[name] if f"{name}_{f}" not in branch_forms]
        missing += [f"met_{f}" for f in MET_FIELDS if f"met_{f}" not in branch_forms]
        if missing:
            raise SchemaError(f"AGC ntuple is missing branch(es): {', '.join(missing)}")

        output: dict = {}
        used: set[str] = set()
        for name in COLLECTIONS:
            counter = f"number{name}"
            offsets = transforms.counts2offsets_form(branch_forms[counter])
            prefix = name + "_"
            # the stored mass is redundant with (pt, eta, phi, e); vector forbids both temporal components
            skip = {prefix + "e", prefix + "mass"}
            fields = {k[len(prefix):]: v for k, v in branch_forms.items() if k.startswith(prefix) and k not in skip}
            fields["energy"] = branch_forms[prefix + "e"]
            used.update(k for k in branch_forms if k.startswith(prefix))
            used.add(counter)
            output[name] = zip_forms(fields, name, "PtEtaPhiELorentzVector", offsets=offsets)
        met = {k[len("met_"):]: v for k, v in branch_forms.items() if k.startswith("met_")}
        used.update(k for k in branch_forms if k.startswith("met_"))
        output["met"] = zip_forms(met, "met")
        for k, v in branch_forms.items():  # keep event-level scalars (event number, ...)
            if k not in used:
                output[k] = v
        return output
