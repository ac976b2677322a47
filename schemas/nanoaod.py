"""AGCNanoAODSchema: coffea's NanoAODSchema with a clear error for missing analysis branches.

Cross-reference indices (``Jet_muonIdx1`` → ``Muon`` ...) are not used by the ttbar analysis, so
coffea's per-file warnings about absent ones are switched off; branches coffea would synthesise (``Photon_charge``
= 0) are taken from the file when it has them; the branches the AGC v2 selection reads are checked up front and
reported by name.
"""

from __future__ import annotations

from coffea.nanoevents import NanoAODSchema

from schemas.errors import SchemaError

REQUIRED_BRANCHES = (
    "run", "luminosityBlock", "event",
    "nJet", "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_btagCSVV2", "Jet_jetId",
    "nElectron", "Electron_pt", "Electron_eta", "Electron_cutBased", "Electron_sip3d",
    "nMuon", "Muon_pt", "Muon_eta", "Muon_tightId", "Muon_sip3d", "Muon_pfRelIso04_all",
)


class AGCNanoAODSchema(NanoAODSchema):
    """NanoAODSchema that fails with the list of missing AGC branches and does not warn on cross-references."""

    warn_missing_crossrefs = False

    def __init__(self, base_form: dict, *args, **kwargs) -> None:
        present = set(base_form.get("fields", ()))
        missing = [b for b in REQUIRED_BRANCHES if b not in present]
        if missing:
            raise SchemaError(f"NanoAOD input is missing branch(es): {', '.join(missing)}")
        # coffea fills e.g. Photon_charge with zeros for older NanoAOD; a file that stores the branch keeps its
        # own values (and coffea does not warn "Branch Photon_charge already exists" for every chunk)
        self.full_like_items = {k: v for k, v in NanoAODSchema.full_like_items.items() if k not in present}
        super().__init__(base_form, *args, **kwargs)
