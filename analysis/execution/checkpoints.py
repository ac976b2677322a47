"""Checkpoints: each finished chunk is stored (atomically, keyed by the processor's code and settings, the
chunk and the input file), so a rerun computes only the missing chunks and never reuses stale ones."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from pathlib import Path
from typing import Any

from coffea import processor
from coffea.processor.checkpointer import SimpleCheckpointer
from coffea.processor.executor import WorkItem

log = logging.getLogger(__name__)

def processor_fingerprint(proc: processor.ProcessorABC, schema) -> str:
    """Hash of the processor's configuration and the source of its package and schema (for checkpoints)."""
    import importlib
    import sys

    h = hashlib.sha256()
    h.update(f"{type(proc).__module__}.{type(proc).__qualname__}|{getattr(schema, '__name__', schema)}".encode())
    h.update(repr(sorted((k, repr(v)) for k, v in vars(proc).items())).encode())
    files: set[Path] = set()
    for mod_name in {type(proc).__module__, getattr(schema, "__module__", "")}:
        mod = sys.modules.get(mod_name) or (importlib.import_module(mod_name) if mod_name else None)
        if mod is not None and getattr(mod, "__file__", None):
            top = sys.modules.get(mod_name.split(".")[0])
            if top is not None and not hasattr(top, "__path__"):  # a single-file (user) module: just that file
                files.add(Path(mod.__file__))
                continue
            root = Path(top.__file__).parent if top is not None and getattr(top, "__file__", None) else Path(mod.__file__).parent
            files.update(root.rglob("*.py"))
    for path in sorted(files):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _chunk_metadata(item: WorkItem) -> dict[str, Any]:
    """The metadata coffea builds for a chunk (what the checkpointer sees)."""
    meta = {"dataset": item.dataset, "filename": item.filename, "treename": item.treename,
            "entrystart": item.entrystart, "entrystop": item.entrystop,
            "fileuuid": str(uuid.UUID(bytes=item.fileuuid)) if len(item.fileuuid) > 0 else ""}
    meta.update(item.usermeta or {})
    return meta


class ChunkCheckpointer(SimpleCheckpointer):
    """Per-chunk checkpoints under ``DIR/<processor fingerprint>/<dataset>/<file uuid>/<tree>/``, written atomically."""

    _CORE = ("dataset", "filename", "treename", "entrystart", "entrystop", "fileuuid")
    # keys a schema adds to the chunk's metadata while processing (NanoAODSchema: "version"); the metadata
    # coffea hands to save() then differs from the one the chunk was planned with, so they are not part of the key
    _ADDED = ("version",)

    def __init__(self, checkpoint_dir: str, fingerprint: str) -> None:
        super().__init__(checkpoint_dir, verbose=False, overwrite=True)
        self.fingerprint = fingerprint

    def filepath(self, metadata: Any, processor_instance=None) -> str:
        """Checkpoint path; the chunk's user metadata (xsec, nevts, ...) is part of the name."""
        user = {k: v for k, v in metadata.items() if k not in self._CORE and k not in self._ADDED}
        tag = hashlib.sha256(json.dumps(user, sort_keys=True, default=str).encode()).hexdigest()[:12]
        return str(Path(self.checkpoint_dir) / self.fingerprint / metadata["dataset"] / (metadata["fileuuid"] or "nouuid")
                   / metadata["treename"] / f"{metadata['entrystart']}-{metadata['entrystop']}-{tag}.coffea")

    def save(self, output, metadata: Any, processor_instance=None) -> None:
        """Write to a temporary name, then rename: a killed run never leaves a half-written checkpoint."""
        import cloudpickle

        fpath = self.filepath(metadata, processor_instance)
        tmp = f"{fpath}.{uuid.uuid4().hex}.tmp"
        try:
            self.fs.mkdirs(str(Path(fpath).parent), exist_ok=True)
            with self.fs.open(tmp, "wb", compression="lz4") as fout:
                cloudpickle.dump(output, fout)
            self.fs.mv(tmp, fpath)
        except Exception as err:  # a failed checkpoint must not fail the chunk
            log.warning("could not write checkpoint %s: %s", fpath, err)

    def exists(self, item: WorkItem) -> bool:
        """True if a checkpoint for this chunk is stored."""
        return self.fs.exists(self.filepath(_chunk_metadata(item)))

