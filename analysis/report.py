"""One-page HTML report: run metrics, yields per region and process, fit summary, every plot inline."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import hist

CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
h1{border-bottom:2px solid #444}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #bbb;padding:4px 10px;text-align:right}th{background:#eee}
td:first-child,th:first-child{text-align:left}.plots{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;width:48%}figure img{width:100%}figcaption{font-size:90%;color:#555;text-align:center}
.poi{font-size:140%;font-weight:bold}
"""


def _table(header: list[str], rows: list[list[Any]]) -> str:
    """An HTML table from a header and rows."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def yields_table(h: hist.Hist) -> str:
    """Nominal yields (± MC stat.) per region and process."""
    procs = [p for p in h.axes["process"] if "nominal" in h.axes["variation"]]
    regions = list(h.axes["region"])
    rows = []
    for p in procs:
        row: list[Any] = [p]
        for r in regions:
            hh = h[:, r, p, "nominal"]
            row.append(f"{hh.values().sum():.1f} ± {hh.variances().sum() ** 0.5:.1f}")
        rows.append(row)
    totals = ["total MC"] + [f"{sum(h[:, r, p, 'nominal'].values().sum() for p in procs):.1f}" for r in regions]
    return _table(["process"] + regions, rows + [totals])


def _img(path: Path) -> str:
    """A PNG embedded as a data URI, so the report is one self-contained file."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(path.stem)}</figcaption></figure>'


def write_report(path: str | Path, *, metrics: dict[str, Any], hist_: hist.Hist, fit_summary: dict[str, Any],
                 plots: list[Path], title: str = "AGC ttbar analysis") -> Path:
    """Write the report page and return its path."""
    poi, err = fit_summary["poi_bestfit"], fit_summary["poi_uncertainty"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    parts.append(f"<p class='poi'>{html.escape(fit_summary['poi'])} = {poi:.3f} ± {err:.3f}</p>")
    fit_rows = [["−2 ln L at best fit", f"{fit_summary['minus_two_log_likelihood']:.2f}"]]
    if "significance" in fit_summary:
        s = fit_summary["significance"]
        fit_rows.append(["discovery significance (obs. / exp.)", f"{s['observed']:.2f} σ / {s['expected']:.2f} σ"])
    if "upper_limit_95cl" in fit_summary:
        lim = fit_summary["upper_limit_95cl"]
        fit_rows.append(["95% CL upper limit (obs. / exp. median)", f"{lim['observed']:.3f} / {lim['expected'][2]:.3f}"])
    parts.append("<h2>Fit</h2>" + _table(["quantity", "value"], fit_rows))
    pulls = [[lab, f"{b:.3f}", f"{u:.3f}"] for lab, b, u in zip(fit_summary["labels"], fit_summary["bestfit"],
                                                                  fit_summary["uncertainty"]) if not lab.startswith("staterror")]
    parts.append("<details><summary>parameters</summary>" + _table(["parameter", "best fit", "uncertainty"], pulls) + "</details>")
    run_rows = [[k, f"{metrics[k]:.4g}" if isinstance(metrics[k], float) else metrics[k]]
                for k in ("executor", "workers", "chunksize", "events_processed", "wall_time_s", "events_per_s") if k in metrics]
    parts.append("<h2>Processing</h2>" + _table(["metric", "value"], run_rows))
    parts.append("<h2>Yields (nominal, before the fit)</h2>" + yields_table(hist_))
    parts.append("<h2>Plots</h2><div class='plots'>" + "".join(_img(p) for p in plots if Path(p).suffix == ".png") + "</div>")
    parts.append("</body></html>")
    out = Path(path)
    out.write_text("\n".join(parts))
    return out
