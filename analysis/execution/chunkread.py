"""Per-chunk reading without coffea's per-chunk setup: open trees are reused across a file's chunks.

coffea's ``Runner._work_function`` re-opens the file for every chunk, re-reads the TTree metadata (every
TBranch streamer) and lists every branch's type to build the NanoEvents form: ~15 ms per chunk on the
AGC ntuples, more than a quarter of the whole per-chunk cost. :func:`work_function` (installed as
``_ReliableRunner._work_function``) does the same work with that setup done once per file and process:

* a per-process cache of open trees keyed by (path, file uuid, tree, reader options) holds the uproot
  file, the TTree and its NanoEvents base form; it is bounded (:data:`MAX_OPEN_TREES` = 1: a file's chunks
  are consecutive) so a worker's memory stays flat in the dataset size (a memory-mapped file's touched
  pages stay mapped until it is closed: +13 MB peak RSS on the 200k-event AGC files); entries are dropped
  (and closed) when evicted, when a chunk fails (so a retry re-opens the file), and by
  :func:`close_open_trees` at the end of a run;
* when the work item names branches (``WorkItem.preload``: the runner sets the processor's declared
  ``columns``), they are read together with one ``TTree.arrays`` call per chunk, as coffea's ``preload`` does;
  other branches stay lazily readable;
* the events are the very same coffea virtual NanoEvents (same schema, same lazy per-branch reading, same
  metadata), so processors see no difference and histograms are bit-identical;
* a processor that offers ``process_columns`` (see :func:`analysis.execution.fastpath.columns_capable`: default
  schema, no subclass overriding ``process`` below it) with declared branches gets them as arrays instead, one
  ``TTree.arrays`` call per chunk and no NanoEvents (as on the local fast path; same output by that method's
  contract, so the same bits on every executor).

Checkpoint loading, the error wrapping the reliability layer parses (``Failed to open file`` / ``Failed
creating nanoevents`` / ``Failed processing file`` with the chunk's ``WorkItem``) and the metrics
(bytes read per chunk, columns, entries, process time) are those of coffea. Anything this path does not
cover (parquet, dataframes, non-NanoEvents schemas, a coffea without the internals used) goes to
coffea's own ``_work_function``.
"""

from __future__ import annotations

import copy
import time
import uuid as uuidlib
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import cloudpickle
import lz4.frame as lz4f
import uproot
from coffea.nanoevents import NanoEventsFactory, schemas
from coffea.nanoevents.util import key_to_tuple
from coffea.processor import ProcessorABC
from coffea.processor.executor import Runner, WorkItem

from analysis.execution.fastpath import columns_capable, warning_counts
from schemas.reading import use_inflate

try:  # coffea internals used by NanoEventsFactory.from_root (virtual mode)
    from coffea.nanoevents.factory import _OnlySliceableAs
    from coffea.nanoevents.mapping.uproot import TrivialUprootOpener, UprootSourceMapping

    _HAVE_INTERNALS = hasattr(NanoEventsFactory, "_from_mapping") and hasattr(UprootSourceMapping, "_extract_base_form")
except ImportError:  # pragma: no cover - other coffea versions
    _HAVE_INTERNALS = False

MAX_OPEN_TREES = 1


@dataclass
class _OpenTree:
    """An open file, its tree and the tree's NanoEvents base form (without per-chunk metadata)."""

    file: Any
    tree: Any
    base_form: dict


_OPEN: "OrderedDict[tuple, _OpenTree]" = OrderedDict()


def close_open_trees() -> None:
    """Close every tree this process holds open (end of a run; idempotent)."""
    while _OPEN:
        _, entry = _OPEN.popitem(last=False)
        entry.file.close()


def _drop(key: tuple) -> None:
    entry = _OPEN.pop(key, None)
    if entry is not None:
        entry.file.close()


def _key(item: WorkItem, uproot_options: dict, timeout: Any) -> tuple:
    return (item.filename, bytes(item.fileuuid), item.treename, timeout,
            tuple(sorted((k, repr(v)) for k, v in uproot_options.items())))


def _open_tree(key: tuple, item: WorkItem, uproot_options: dict, timeout: Any, iteritems_options: dict) -> _OpenTree:
    """The cached open tree for ``key``, opening (and evicting the oldest beyond the bound) if needed."""
    entry = _OPEN.get(key)
    if entry is not None:
        _OPEN.move_to_end(key)
        return entry
    file = uproot.open({item.filename: None}, timeout=timeout, **uproot_options)
    try:
        tree = file[item.treename]
        base_form = UprootSourceMapping._extract_base_form(tree, iteritems_options=iteritems_options)
        base_form["typenames"] = tree.typenames()
    except Exception:
        file.close()
        raise
    entry = _OPEN[key] = _OpenTree(file, tree, base_form)
    while len(_OPEN) > MAX_OPEN_TREES:
        _drop(next(iter(_OPEN)))
    return entry


def _events(entry: _OpenTree, item: WorkItem, schema, metadata: dict, access_log: list, uproot_options: dict,
            buffer_cache) -> Any:
    """coffea virtual NanoEvents for the chunk, as ``NanoEventsFactory.from_root`` builds them, on the open tree."""
    tree = entry.tree
    start = max(item.entrystart or 0, 0)
    stop = tree.num_entries if item.entrystop is None or item.entrystop > tree.num_entries else item.entrystop
    partition_key = (str(tree.file.uuid), tree.object_path, f"{start}-{stop}")
    preloaded = None
    if item.preload:  # the declared branches, read together (one pass over their baskets)
        names = frozenset(item.preload)
        arrays = tree.arrays(filter_branch=lambda b: b.name in names, entry_start=start, entry_stop=stop,
                             ak_add_doc=True, how=dict)
        preloaded = {k: _OnlySliceableAs(v, slice(start, stop)) for k, v in arrays.items()}
    mapping = UprootSourceMapping(TrivialUprootOpener({partition_key[0]: tree.file.file_path}, uproot_options),
                                  start, stop, cache={}, access_log=access_log, file_handle=entry.file,
                                  use_ak_forth=True, virtual=True, preloaded_arrays=preloaded,
                                  buffer_cache=buffer_cache)
    mapping.preload_column_source(partition_key[0], partition_key[1], tree)
    base_form = copy.deepcopy(entry.base_form)  # schemas may edit the form they are given
    return NanoEventsFactory._from_mapping(mapping, partition_key, base_form, schema, metadata, mode="virtual").events()


def _columns(entry: _OpenTree, item: WorkItem) -> dict:
    """The declared branches present in the file (``item.preload``) for the chunk's entries: name → array."""
    tree = entry.tree
    start = max(item.entrystart or 0, 0)
    stop = tree.num_entries if item.entrystop is None or item.entrystop > tree.num_entries else item.entrystop
    names = frozenset(b for b in item.preload if b in tree)
    return tree.arrays(filter_branch=lambda b: b.name in names, entry_start=start, entry_stop=stop, how=dict)


def work_function(format: str, xrootdtimeout: int, schema, use_dataframes: bool, savemetrics: bool, item: WorkItem,
                  processor_instance, uproot_options: dict, iteritems_options: dict, checkpointer,
                  cache_function) -> dict:
    """Drop-in for ``coffea.processor.Runner._work_function`` (same arguments, output and error messages)
    that keeps each file's tree open across its chunks. See the module docstring.

    Warnings raised while the chunk is read and processed are returned with the output (``"warnings"``:
    ``{(category, message, filename, lineno): count}``, summed over chunks like the rest of the output) instead
    of being printed by a pool or Dask worker process; the run re-emits them in the main process
    (:func:`analysis.execution.fastpath.reemit_warnings`), where the CLI counts them into its one summary line (``-v`` shows them).
    """
    with warnings.catch_warnings(record=True) as caught:
        out = _work_function(format, xrootdtimeout, schema, use_dataframes, savemetrics, item, processor_instance,
                             uproot_options, iteritems_options, checkpointer, cache_function)
    if caught and isinstance(out, dict):
        out["warnings"] = warning_counts(caught)
    return out


def _work_function(format: str, xrootdtimeout: int, schema, use_dataframes: bool, savemetrics: bool, item: WorkItem,
                   processor_instance, uproot_options: dict, iteritems_options: dict, checkpointer,
                   cache_function) -> dict:
    """Body of :func:`work_function`."""
    if (not _HAVE_INTERNALS or format != "root" or use_dataframes or schema is None
            or not (isinstance(schema, type) and issubclass(schema, schemas.BaseSchema))):
        return Runner._work_function(format, xrootdtimeout, schema, use_dataframes, savemetrics, item,
                                     processor_instance, uproot_options, iteritems_options, checkpointer,
                                     cache_function)
    if isinstance(processor_instance, str) and processor_instance == "heavy":  # Dask: (item, processor)
        item, processor_instance = item
    if not isinstance(processor_instance, ProcessorABC) and not callable(processor_instance):
        processor_instance = cloudpickle.loads(lz4f.decompress(processor_instance))
    if item.preload is not None and callable(item.preload):
        return Runner._work_function(format, xrootdtimeout, schema, use_dataframes, savemetrics, item,
                                     processor_instance, uproot_options, iteritems_options, checkpointer,
                                     cache_function)
    uproot_options = dict(uproot_options)
    timeout = uproot_options.pop("timeout", xrootdtimeout)
    metadata = {"dataset": item.dataset, "filename": item.filename, "treename": item.treename,
                "entrystart": item.entrystart, "entrystop": item.entrystop,
                "fileuuid": str(uuidlib.UUID(bytes=item.fileuuid)) if len(item.fileuuid) > 0 else ""}
    if item.usermeta is not None:
        metadata.update(item.usermeta)
    if checkpointer is not None:
        out = checkpointer.load(metadata, processor_instance)
        if out is not None:
            return out
    key = _key(item, uproot_options, timeout)
    try:
        try:
            entry = _open_tree(key, item, uproot_options, timeout, iteritems_options)
        except Exception as e:
            raise Exception(f"Failed to open file: {item!r}. The error was: {e!r}.") from e
        bytes_before = entry.file.file.source.num_requested_bytes if savemetrics else 0
        materialized: list = []
        # a wrapper (the Runner's per-chunk processor) names the processor that may take columns
        target = getattr(processor_instance, "columns_processor", processor_instance)
        by_columns = bool(item.preload) and columns_capable(target, metadata.get("format", "ntuple"), schema)
        try:
            if by_columns:  # the declared branches as arrays, no NanoEvents (same output: process_columns' contract)
                use_inflate(getattr(target, "inflate", None))  # the processor's inflater, before reading
                events = _columns(entry, item)
            else:
                events = _events(entry, item, schema, metadata, materialized, uproot_options, cache_function())
        except Exception as e:
            raise Exception(f"Failed creating nanoevents: {item!r}. The error was: {e!r}.") from e
        tic = time.time()
        try:
            if by_columns:
                out = target.process_columns(events, metadata)
            else:
                out = processor_instance.process(events) if isinstance(processor_instance, ProcessorABC) else processor_instance(events)
        except Exception as e:
            raise Exception(f"Failed processing file: {item!r}. The error was: {e!r}.") from e
    except BaseException:
        _drop(key)  # a retry starts from a freshly opened file
        raise
    if out is None:
        raise ValueError("Output of process() should not be None. Make sure your processor's process() function "
                         "returns an accumulator.")
    toc = time.time()
    if savemetrics:
        columns = set(events) if by_columns else {f"{x.branch}-{key_to_tuple(x.buffer_key)[3]}" for x in materialized}
        entries = (len(next(iter(events.values()))) if events else 0) if by_columns else len(events)
        metrics = {"bytesread": entry.file.file.source.num_requested_bytes - bytes_before, "columns": columns,
                   "entries": entries, "processtime": toc - tic}
        out = {"out": out, "metrics": metrics, "processed": {item}}
    else:
        out = {"out": out, "processed": {item}}
    if checkpointer is not None:
        checkpointer.save(out, metadata, processor_instance)
    return out
