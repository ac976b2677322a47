"""Shared base for schemas that zip flat branches (``<obj>_<field>`` + a counter) into vector collections."""

from __future__ import annotations

from coffea.nanoevents.methods import base, vector
from coffea.nanoevents.schemas.base import BaseSchema


class FlatCollectionsSchema(BaseSchema):
    """Rebuilds the form from the branch forms with ``_build_collections``; vector behaviours attached."""

    def __init__(self, base_form: dict, *args, **kwargs) -> None:
        super().__init__(base_form)
        branch_forms = dict(zip(self._form["fields"], self._form["contents"]))
        output = self._build_collections(branch_forms)
        self._form["fields"] = list(output.keys())
        self._form["contents"] = list(output.values())

    @staticmethod
    def _build_collections(branch_forms: dict) -> dict:
        """Map branch name → form to field name → form (subclasses zip their collections here)."""
        raise NotImplementedError

    @classmethod
    def behavior(cls) -> dict:
        """Base NanoEvents plus vector behaviours."""
        behavior: dict = {}
        behavior.update(base.behavior)
        behavior.update(vector.behavior)
        return behavior
