"""Pre-flight: every input file is opened once (metadata only) and checked before any chunk runs.

Missing, not ROOT, wrong tree, wrong entry count, truncated (basket bytes past the end of the file): all
problems together, with the events each bad file would lose.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uproot

from analysis.errors import AnalysisError
from fileset.build import is_remote

@dataclass
class FileCheck:
    """Pre-flight verdict on one input file."""

    dataset: str
    path: str
    treename: str
    reason: str | None = None
    entries: int | None = None
    uuid: bytes | None = None
    bytes_per_event: float | None = None
    basket_boundaries: list[int] | None = None  # entries where every needed branch starts a basket
    # (open uproot file, its TTree) kept for the run's reader when asked (``preflight(..., keep_open=…)``): the
    # reader takes it instead of opening the file and parsing the TTree metadata a second time
    opened: tuple[Any, Any] | None = field(default=None, repr=False, compare=False)

    def take_opened(self) -> tuple[Any, Any] | None:
        """The kept (file, tree), handed over once (the caller then owns it and closes the file)."""
        opened, self.opened = self.opened, None
        return opened

    def close(self) -> None:
        """Close the kept file, if still held (idempotent)."""
        opened = self.take_opened()
        if opened is not None:
            opened[0].close()

    @property
    def ok(self) -> bool:
        """True when the file can be processed."""
        return self.reason is None


class KeepOpen:
    """Which inspected files stay open for the run's reader: opened with the reader's uproot ``options``, at most
    ``files`` of them and ``metadata_bytes`` of serialized TTree metadata in total (thread-safe; files past the
    budget are closed and simply re-opened by the reader), so memory and file descriptors stay bounded."""

    def __init__(self, options: dict[str, Any], files: int = 32, metadata_bytes: int = 16 << 20) -> None:
        self.options, self.files, self.metadata_bytes = dict(options), files, metadata_bytes
        self._lock = threading.Lock()

    def admit(self, f: Any, treename: str) -> bool:
        """True (and the budget charged) if the file's TTree may be kept."""
        try:
            size = int(f.key(treename).data_uncompressed_bytes)
        except Exception:  # noqa: BLE001 - no key size: do not keep
            return False
        with self._lock:
            if self.files < 1 or size > self.metadata_bytes:
                return False
            self.files -= 1
            self.metadata_bytes -= size
            return True


@dataclass
class Accounting:
    """Where every expected event went: processed, or lost with a reason (bad file or unreadable chunk)."""

    bad_files: list[dict[str, Any]] = field(default_factory=list)
    lost_chunks: list[dict[str, Any]] = field(default_factory=list)

    def lost_per_dataset(self) -> dict[str, int]:
        """Events lost per dataset (files with an unknown entry count contribute nothing)."""
        out: dict[str, int] = {}
        for rec in self.bad_files + self.lost_chunks:
            out[rec["dataset"]] = out.get(rec["dataset"], 0) + (rec["events_lost"] or 0)
        return dict(sorted(out.items()))

    def summary_lines(self) -> list[str]:
        """One line per skipped file or chunk."""
        lines = [f"{r['path']}: {r['reason']} ({_n(r['events_lost'])} events lost)" for r in self.bad_files]
        lines += [f"{r['path']} entries {r['entry_start']}-{r['entry_stop']}: {r['reason']} ({r['events_lost']} events lost)"
                  for r in self.lost_chunks]
        return lines


def _n(x: int | None) -> str:
    """Event count or 'unknown'."""
    return "unknown" if x is None else str(x)


def inspect_file(dataset: str, path: str, treename: str, expected_entries: int | None = None,
                 retries: int = 0, timeout: int = 60, branches: list[str] | None = None,
                 keep: KeepOpen | None = None) -> FileCheck:
    """Open one file and check it can be processed: exists, ROOT, has the TTree, entry count, not truncated.

    Reads metadata only (no basket payload). Also records the entries at which all of ``branches`` (those
    present; all branches if None) start a basket, for basket-aligned chunks. With ``keep``, the file is opened with
    the run's reader options and a good TTree within ``keep``'s budget stays open in ``FileCheck.opened``.
    """
    check = FileCheck(dataset, path, treename)
    if not is_remote(path) and not Path(path).is_file():
        check.reason = "file not found"
        return check
    attempts = retries + 1 if is_remote(path) else 1
    for attempt in range(attempts):
        try:
            _inspect_open(check, expected_entries, timeout, branches, keep)
            return check
        except Exception as err:  # uproot raises many types for damaged or unreachable files
            check.reason = f"not a readable ROOT file ({type(err).__name__}: {_first_line(err)})"
            if attempt + 1 < attempts:
                time.sleep(0.5 * 2**attempt)
    return check


def _inspect_open(check: FileCheck, expected_entries: int | None, timeout: int,
                  branches: list[str] | None = None, keep: KeepOpen | None = None) -> None:
    """The body of :func:`inspect_file`: opens the file (closed again unless kept) and checks it."""
    f = uproot.open(check.path, timeout=timeout, **(keep.options if keep is not None else {}))
    try:
        tree = _inspect_tree(check, f, expected_entries, branches)
    except BaseException:
        f.close()
        raise
    if keep is not None and tree is not None and check.ok and keep.admit(f, check.treename):
        check.opened = (f, tree)
    else:
        f.close()


def _inspect_tree(check: FileCheck, f: Any, expected_entries: int | None, branches: list[str] | None) -> Any:
    """The checks of :func:`inspect_file` on the open file: sets ``check.reason`` for structural problems; returns
    the TTree when it is one (else None)."""
    size = os.path.getsize(check.path) if not is_remote(check.path) else getattr(f.file.source, "num_bytes", None)
    end = int(f.file.fEND)
    if size is not None and size < end:
        check.reason = f"truncated file ({size} of {end} bytes)"
        return None
    if check.treename not in f:
        check.reason = f"no tree {check.treename!r} in file (has: {', '.join(f.keys(cycle=False)) or 'nothing'})"
        return None
    tree = f[check.treename]
    limit = size if size is not None else end
    if isinstance(tree, uproot.behaviors.RNTuple.HasFields):  # RNTuple (e.g. CMS NanoAOD from ROOT 6.34+)
        _inspect_rntuple(check, tree, limit, expected_entries)
        if check.reason is None:
            check.uuid = f.file.fUUID
        return None
    if not isinstance(tree, uproot.behaviors.TTree.TTree):
        check.reason = f"{check.treename!r} is a {type(tree).__name__}, neither a TTree nor an RNTuple"
        return None
    for branch in tree.itervalues(recursive=True):
        n = branch.num_baskets
        seeks, nbytes = branch.member("fBasketSeek")[:n], branch.member("fBasketBytes")[:n]
        for seek, nb in zip(seeks, nbytes):
            if int(seek) + int(nb) > limit:
                check.reason = f"truncated file: basket of branch {branch.name!r} ends at byte {int(seek) + int(nb)}, file has {limit}"
                return None
    check.entries = int(tree.num_entries)
    if expected_entries is not None and check.entries != expected_entries:
        check.reason = f"has {check.entries} entries, the fileset says {expected_entries}"
        return None
    check.uuid = f.file.fUUID
    check.bytes_per_event = float(tree.member("fTotBytes")) / max(check.entries, 1)
    present = None if branches is None else [b for b in branches if b in tree]
    if present is None or present:
        check.basket_boundaries = [int(x) for x in tree.common_entry_offsets(filter_name=present)]
    return tree


def _inspect_rntuple(check: FileCheck, ntuple: Any, limit: int, expected_entries: int | None) -> None:
    """RNTuple version of the TTree checks: header, footer and every page inside the file; entry count."""
    anchor = ntuple.members
    for what in ("Header", "Footer"):
        stop = int(anchor[f"fSeek{what}"]) + int(anchor[f"fNBytes{what}"])
        if stop > limit:
            check.reason = f"truncated file: RNTuple {what.lower()} ends at byte {stop}, file has {limit}"
            return
    page_bytes = 0
    for cluster in ntuple.page_link_list:
        for column in cluster:
            for page in column.pages:
                stop = int(page.locator.offset) + int(page.locator.num_bytes)
                if stop > limit:
                    check.reason = f"truncated file: an RNTuple page ends at byte {stop}, file has {limit}"
                    return
                page_bytes += int(page.locator.num_bytes)
    check.entries = int(ntuple.num_entries)
    if expected_entries is not None and check.entries != expected_entries:
        check.reason = f"has {check.entries} entries, the fileset says {expected_entries}"
        return
    check.bytes_per_event = page_bytes / max(check.entries, 1)


def _first_line(err: BaseException) -> str:
    """First line of an exception message (uproot's are long)."""
    text = str(err)
    return text.splitlines()[0] if text else ""


def preflight(fileset: dict[str, dict[str, Any]], expected: dict[str, int] | None = None, *, client=None,
              retries: int = 0, threads: int = 8, branches: list[str] | None = None,
              keep: KeepOpen | None = None) -> list[FileCheck]:
    """Inspect every file of the fileset (on the Dask workers if ``client`` is given, else in threads).

    ``branches``: the branches the run will read (basket boundaries are those common to them). ``keep`` (local
    runs only): keep files open for the reader within its budget (the caller closes what the reader did not take,
    :meth:`FileCheck.close`).
    """
    expected = expected or {}
    jobs = [(ds, p, spec["treename"], expected.get(p)) for ds, spec in fileset.items() for p in spec["files"]]
    if client is not None:
        futures = [client.submit(inspect_file, *job, retries, branches=branches, pure=False) for job in jobs]
        return client.gather(futures)
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(jobs)))) as pool:
        return list(pool.map(lambda job: inspect_file(*job, retries, branches=branches, keep=keep), jobs))


def check_files(fileset: dict[str, dict[str, Any]], timeout: int = 60) -> None:
    """Open every file once: missing, corrupt, truncated or wrong tree → one error listing all of them."""
    bad = [c for c in preflight(fileset) if not c.ok]
    if bad:
        raise AnalysisError(f"{len(bad)} unreadable input file(s): " + "; ".join(f"{c.path}: {c.reason}" for c in bad))


def _drop_bad_files(fileset: dict[str, dict[str, Any]], bad: set[str]) -> dict[str, dict[str, Any]]:
    """Fileset without the bad files (datasets left empty are dropped)."""
    out = {}
    for ds, spec in fileset.items():
        files = [p for p in spec["files"] if p not in bad]
        if files:
            out[ds] = dict(spec, files=files)
    return out

