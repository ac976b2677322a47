"""``ana run ttbar`` / ``ana run --processor MODULE:CLASS``: process a fileset into histograms locally or on Dask."""

from __future__ import annotations

import argparse
import sys

from analysis.cli import workflow_imports
from analysis.cli.types import count_or_all, output_dir
from analysis.execution.cluster import CLUSTER_KINDS
from analysis.execution.options import EXECUTORS, RunOptions


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``run`` subcommand."""
    parser = sub.add_parser(
        "run", help="run a processor over a fileset and save histograms",
        description="Run the AGC ttbar processor (ana run ttbar) or your own coffea processor (ana run --processor "
        "my_module:MyProcessor, a module name or path/to/file.py) over a fileset json, with pre-flight checks, "
        "retries, skip-and-account, checkpoints and exact histogram sums on every executor.")
    parser.add_argument("workflow", nargs="?", choices=["ttbar"], help="the built-in ttbar workflow (or use --processor)")
    parser.add_argument("--processor", metavar="MODULE:CLASS",
                        help="your own coffea ProcessorABC: module:Class or path/to/file.py:Class")
    parser.add_argument("--processor-option", action="append", metavar="KEY=VALUE", default=None,
                        help="keyword argument for the processor's constructor (repeatable; values read as YAML)")
    parser.add_argument("--schema", default=None, metavar="NAME",
                        help="NanoEvents schema for --processor: auto (default), nanoaod, agc, base or module:Class")
    parser.add_argument("--fileset", help="AGC-style ntuples.json or, with --processor, a coffea-style fileset json")
    parser.add_argument("--out", type=output_dir,
                        help="output directory (histograms.root, metrics.json; output.coffea with --processor)")
    parser.add_argument("--executor", choices=EXECUTORS, default=None,
                        help="default: dask with --scheduler/--cluster, else futures")
    # executor options (workers, chunksize, retries, ...) are validated together by RunOptions (one line)
    parser.add_argument("--workers", type=int, default=None, help="local workers (default: all cores)")
    parser.add_argument("--scheduler", default=None, help="existing Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("--cluster", choices=CLUSTER_KINDS, default=None, help="start Dask workers as batch jobs")
    parser.add_argument("--cluster-config", default=None, help="YAML with a 'cluster:' section (cores, memory, ...)")
    parser.add_argument("--print-job-script", action="store_true",
                        help="print the batch job script for --cluster/--cluster-config and exit (submits nothing)")
    parser.add_argument("--no-ship-code", action="store_true",
                        help="do not upload the project code to the workers (they have it installed)")
    defaults = {name: field.default for name, field in RunOptions.model_fields.items()}  # defined once, there
    parser.add_argument("--chunksize", type=int, default=None,
                        help=f"events per chunk, clamped to the worker memory (default {defaults['chunksize']})")
    parser.add_argument("--skip-bad-files", action="store_true",
                        help="skip unreadable files/chunks, reporting each with the events lost")
    parser.add_argument("--retries", type=int, default=None,
                        help=f"extra attempts per chunk for transient errors (default {defaults['retries']})")
    parser.add_argument("--checkpoint", type=output_dir, default=None, help="directory for per-chunk checkpoints (resume)")
    parser.add_argument("--max-files", type=count_or_all, default=-1, help="N_FILES_MAX_PER_SAMPLE (-1: all)")
    parser.add_argument("--format", choices=["ntuple", "nanoaod"], default=None, dest="input_format",
                        help="input format when the json does not say (e.g. AGC's nanoaod_inputs.json)")
    parser.add_argument("--samples", default=None, help="samples YAML (cross-sections, luminosity)")
    parser.add_argument("--no-progress", action="store_true", help="disable the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the ttbar processor and print a short summary (with every skipped file and the events lost)."""
    from analysis.errors import AnalysisError

    if args.print_job_script:
        from analysis.execution.cluster import job_script, load_cluster_config

        if not args.cluster or not args.cluster_config:
            raise AnalysisError("--print-job-script needs --cluster and --cluster-config")
        print(job_script(args.cluster, load_cluster_config(args.cluster_config, args.cluster)))
        return 0
    missing = [f"--{name}" for name in ("fileset", "out") if getattr(args, name) is None]
    if (args.workflow is None) == (args.processor is None):
        missing.append("either the workflow 'ttbar' or --processor MODULE:CLASS")
    if args.workflow is not None and (args.processor_option or args.schema):
        missing.append("--processor-option/--schema need --processor")
    if missing:
        raise AnalysisError(f"missing or conflicting option(s): {', '.join(missing)}")
    run_options = dict(executor=args.executor, workers=args.workers, scheduler=args.scheduler, chunksize=args.chunksize,
                       progress=not args.no_progress, cluster=args.cluster, cluster_config=args.cluster_config,
                       skip_bad_files=args.skip_bad_files, retries=args.retries, checkpoint=args.checkpoint,
                       ship_code=False if args.no_ship_code else None)
    if args.processor is not None:
        return _run_user(args, run_options)

    with workflow_imports():
        from analysis.agc.run import run_ttbar

    result = run_ttbar(args.fileset, args.out, max_files=args.max_files, input_format=args.input_format,
                       samples_config=args.samples, **run_options)
    m = result.metrics
    reused = f" ({m['events_from_checkpoint']} from the checkpoint)" if m.get("events_from_checkpoint") else ""
    print(f"processed {m['events_processed']} events{reused} in {m['processing_time_s']:.1f} s "
          f"({m['events_per_s']:.0f} events/s) with {m['executor']} on {m['workers']} worker(s); "
          f"wrote {result.output_dir}/histograms.root")
    if m["chunks_from_checkpoint"]:
        print(f"{m['chunks_from_checkpoint']} of {m['chunks']} chunks taken from the checkpoint {m['checkpoint_dir']}")
    for w in m["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    skipped = m["bad_files"] + m["lost_chunks"]
    if skipped:
        print(f"SKIPPED {len(m['bad_files'])} file(s) and {len(m['lost_chunks'])} chunk(s):")
        _print_losses(m)
        print(f"events: {m['events_processed']} processed + {m['events_lost']} lost = {m['events_expected']} expected")
    return 0


def _run_user(args: argparse.Namespace, run_options: dict) -> int:
    """``ana run --processor``: the user's processor on the same machinery; print a short summary."""
    with workflow_imports():
        from analysis.execution.user import parse_processor_options, run_user_processor

    result = run_user_processor(args.processor, args.fileset, args.out, schema=args.schema,
                                processor_options=parse_processor_options(args.processor_option),
                                max_files=args.max_files, samples_config=args.samples,
                                input_format=args.input_format, **run_options)
    m = result.metrics
    print(f"processed {m['events_processed']} events in {m['processing_time_s']:.1f} s with {m['executor']} on "
          f"{m['workers']} worker(s); wrote {len(result.histogram_keys)} histograms to {result.output_dir}/histograms.root "
          f"and {result.output_dir}/output.coffea")
    for w in m["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    skipped = m["bad_files"] + m["lost_chunks"]
    if skipped:
        print(f"SKIPPED {len(m['bad_files'])} file(s) and {len(m['lost_chunks'])} chunk(s) ({m['events_lost']} events lost):")
        _print_losses(m)
    return 0


def _print_losses(m: dict) -> None:
    """One line per skipped file and per skipped chunk, with the events each lost (run metrics ``m``)."""
    for r in m["bad_files"]:
        print(f"  {r['path']}: {r['reason']} ({r['events_lost']} events lost)")
    for r in m["lost_chunks"]:
        print(f"  {r['path']} entries {r['entry_start']}-{r['entry_stop']}: {r['reason']} ({r['events_lost']} events lost)")
