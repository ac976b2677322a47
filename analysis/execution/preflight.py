"""Pre-flight: every input file is opened once (metadata only) and checked before any chunk runs.

Missing, not ROOT, wrong tree, wrong entry count, truncated (basket bytes past the end of the file): all
problems together, with the events each bad file would lose.
"""

from __future__ import annotations

import os
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

    @property
    def ok(self) -> bool:
        """True when the file can be processed."""
        return self.reason is None


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
                 retries: int = 0, timeout: int = 60, branches: list[str] | None = None) -> FileCheck:
    """Open one file and check it can be processed: exists, ROOT, has the TTree, entry count, not truncated.

    Reads metadata only (no basket payload). Also records the entries at which all of ``branches`` (those
    present; all branches if None) start a basket, for basket-aligned chunks.
    """
    check = FileCheck(dataset, path, treename)
    if not is_remote(path) and not Path(path).is_file():
        check.reason = "file not found"
        return check
    attempts = retries + 1 if is_remote(path) else 1
    for attempt in range(attempts):
        try:
            _inspect_open(check, expected_entries, timeout, branches)
            return check
        except Exception as err:  # uproot raises many types for damaged or unreachable files
            check.reason = f"not a readable ROOT file ({type(err).__name__}: {_first_line(err)})"
            if attempt + 1 < attempts:
                time.sleep(0.5 * 2**attempt)
    return check


def _inspect_open(check: FileCheck, expected_entries: int | None, timeout: int,
                  branches: list[str] | None = None) -> None:
    """The body of :func:`inspect_file`: sets ``check.reason`` for structural problems."""
    with uproot.open(check.path, timeout=timeout) as f:
        size = os.path.getsize(check.path) if not is_remote(check.path) else getattr(f.file.source, "num_bytes", None)
        end = int(f.file.fEND)
        if size is not None and size < end:
            check.reason = f"truncated file ({size} of {end} bytes)"
            return
        if check.treename not in f:
            check.reason = f"no tree {check.treename!r} in file (has: {', '.join(f.keys(cycle=False)) or 'nothing'})"
            return
        tree = f[check.treename]
        limit = size if size is not None else end
        if isinstance(tree, uproot.behaviors.RNTuple.HasFields):  # RNTuple (e.g. CMS NanoAOD from ROOT 6.34+)
            _inspect_rntuple(check, tree, limit, expected_entries)
            if check.reason is None:
                check.uuid = f.file.fUUID
            return
        if not isinstance(tree, uproot.behaviors.TTree.TTree):
            check.reason = f"{check.treename!r} is a {type(tree).__name__}, neither a TTree nor an RNTuple"
            return
        for branch in tree.itervalues(recursive=True):
            n = branch.num_baskets
            seeks, nbytes = branch.member("fBasketSeek")[:n], branch.member("fBasketBytes")[:n]
            for seek, nb in zip(seeks, nbytes):
                if int(seek) + int(nb) > limit:
                    check.reason = f"truncated file: basket of branch {branch.name!r} ends at byte {int(seek) + int(nb)}, file has {limit}"
                    return
        check.entries = int(tree.num_entries)
        if expected_entries is not None and check.entries != expected_entries:
            check.reason = f"has {check.entries} entries, the fileset says {expected_entries}"
            return
        check.uuid = f.file.fUUID
        check.bytes_per_event = float(tree.member("fTotBytes")) / max(check.entries, 1)
        present = None if branches is None else [b for b in branches if b in tree]
        if present is None or present:
            check.basket_boundaries = [int(x) for x in tree.common_entry_offsets(filter_name=present)]


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
              retries: int = 0, threads: int = 8, branches: list[str] | None = None) -> list[FileCheck]:
    """Inspect every file of the fileset (on the Dask workers if ``client`` is given, else in threads).

    ``branches``: the branches the run will read (basket boundaries are those common to them).
    """
    expected = expected or {}
    jobs = [(ds, p, spec["treename"], expected.get(p)) for ds, spec in fileset.items() for p in spec["files"]]
    if client is not None:
        futures = [client.submit(inspect_file, *job, retries, branches=branches, pure=False) for job in jobs]
        return client.gather(futures)
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(jobs)))) as pool:
        return list(pool.map(lambda job: inspect_file(*job, retries, branches=branches), jobs))


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

