"""Self-contained HTML reports: one generic builder every workflow uses.

``Report(title)`` collects sections, headline numbers (with units and meaning), tables and figures with
captions, and ``write(path)`` emits one HTML file with the project's CSS inline and every image embedded
as a base64 data URI, so the file can be mailed or archived on its own (no external ``src``/``href``).

Each workflow builds its page in its own package (``analysis/agc/report.py``, ``analysis/resonance/report.py``,
``analysis/recast/report.py``, ``analysis/reweighting/report.py``, ``analysis/ml/report.py``) from the files it
wrote, so a report can be regenerated from an output directory alone.

Importing this module changes no global state.
"""

from __future__ import annotations

import base64
import html
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from analysis.errors import AnalysisError

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:1180px;color:#222;
     line-height:1.4;padding:0 1em}
h1{border-bottom:2px solid #444;padding-bottom:.2em;margin-bottom:.3em}
h2{margin-top:1.6em;border-bottom:1px solid #ccc;padding-bottom:.15em}
h3{margin-top:1.2em}
.meta{color:#666;font-size:90%;margin-top:0}
.headline{font-size:140%;font-weight:bold;margin:.6em 0}
.note{color:#555;font-size:92%}
.warn{background:#fff4e0;border-left:4px solid #e69500;padding:.4em .8em;margin:.6em 0}
table{border-collapse:collapse;margin:.8em 0}
caption{caption-side:bottom;text-align:left;font-size:90%;color:#555;padding-top:.3em}
td,th{border:1px solid #bbb;padding:3px 9px;text-align:right;vertical-align:top}
th{background:#eee}
td:first-child,th:first-child{text-align:left}
table.numbers td:nth-child(3){text-align:left;color:#555;font-size:92%}
.plots{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
figure{margin:0;flex:0 0 calc(50% - 7px);box-sizing:border-box}
figure.wide{flex:0 0 100%}
figure img{width:100%;border:1px solid #ddd}
figure.wide img{width:auto;max-width:100%;display:block;margin:0 auto}
figcaption{font-size:90%;color:#444;padding:.3em .2em}
figcaption code{color:#777}
details{margin:.5em 0}summary{cursor:pointer;color:#225}
.nw{white-space:nowrap}
"""

#: The meaning of a "±" the reports print, by kind (appended to the number so no "±" stands unexplained).
PM_MEANING = {
    "mc_stat": "MC stat. (√Σw²)",
    "poisson": "Poisson (√N)",
    "hesse": "HESSE, 68 % CL",
    "minos": "MINOS, 68 % CL",
    "fit": "fit, 68 % CL",
    "hanley_mcneil": "stat., Hanley–McNeil",
}


@dataclass(frozen=True)
class Quantity:
    """A number with its unit and what it means, for :meth:`Report.numbers`.

    ``error`` (if given) is printed as ``± error`` followed by ``error_meaning`` (e.g. "MC stat. (√Σw²)").
    """

    value: Any
    unit: str = ""
    meaning: str = ""
    error: float | None = None
    error_meaning: str = ""
    digits: int = 4


def fmt(x: Any, digits: int = 4) -> str:
    """Format a number with ``digits`` significant digits (ints as ints, None as "–", bools as yes/no)."""
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}".replace(",", "\u2009")
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "∞" if x > 0 else "−∞"
        if x != 0 and (abs(x) >= 10 ** (digits + 2) or abs(x) < 1e-3):
            return f"{x:.{max(digits - 1, 1)}e}"
        return f"{x:.{digits}g}" if abs(x) < 10**digits else f"{x:.0f}"
    return str(x)


def pm(value: float, error: float, meaning: str = "", digits: int = 2) -> str:
    """``value ± error (meaning)``, both rounded to the decimal of the error's ``digits``-th significant digit
    (PDG-like: ``pm(1.06702, 0.01782) == "1.067 ± 0.018"``)."""
    if error is None or not math.isfinite(error) or error <= 0:
        return fmt(value, 4)
    decimals = max(0, digits - 1 - int(math.floor(math.log10(error))))
    text = f"{value:.{decimals}f} ± {error:.{decimals}f}"
    return f"{text} ({meaning})" if meaning else text


def _esc(x: Any) -> str:
    """HTML-escape a cell (numbers formatted with :func:`fmt`)."""
    return html.escape(x if isinstance(x, str) else fmt(x))


def _td(x: Any) -> str:
    """A table cell; short ones (numbers, labels) never wrap."""
    text = _esc(x)
    return f"<td class='nw'>{text}</td>" if len(text) <= 24 else f"<td>{text}</td>"


class Report:
    """Builder of one self-contained HTML page.

    Example::

        rep = Report("Diphoton search", subtitle="config: search.yml")
        rep.section("Result")
        rep.numbers({"local significance": Quantity(2.1, "σ", "asymptotic, at the best mass")})
        rep.table(["mass [GeV]", "limit [pb]"], rows, caption="95 % CL CLs upper limits")
        rep.figure("out/limits.png", "Brazil band of the expected limits")
        rep.write("out/report.html")

    Figures are embedded when :meth:`write` runs, so the PNGs must exist by then. ``figures_in`` lists the
    PNG files a report references (tests check every PNG of an output directory is on its page).
    """

    def __init__(self, title: str, subtitle: str | None = None) -> None:
        self.title = title
        self.subtitle = subtitle
        self._parts: list[Any] = []
        self._open_plots = False
        self.figures: list[Path] = []

    # ------------------------------------------------------------------ structure
    def _close_plots(self) -> None:
        if self._open_plots:
            self._parts.append("</div>")
            self._open_plots = False

    def section(self, heading: str, text: str | None = None, level: int = 2) -> "Report":
        """Start a section (``<h2>``, or ``<h3>`` with level=3), optionally with an explanatory paragraph."""
        self._close_plots()
        self._parts.append(f"<h{level}>{html.escape(heading)}</h{level}>")
        if text:
            self.paragraph(text)
        return self

    def paragraph(self, text: str, css_class: str | None = None) -> "Report":
        """A paragraph of plain text (escaped)."""
        self._close_plots()
        cls = f" class='{css_class}'" if css_class else ""
        self._parts.append(f"<p{cls}>{html.escape(text)}</p>")
        return self

    def headline(self, text: str) -> "Report":
        """The run's main result in large type (e.g. ``ttbar_norm = 1.003 ± 0.021 (HESSE)``)."""
        return self.paragraph(text, "headline")

    def note(self, text: str) -> "Report":
        """A smaller explanatory note (conventions, what a ± means)."""
        return self.paragraph(text, "note")

    def warning(self, text: str) -> "Report":
        """A highlighted warning box."""
        return self.paragraph(text, "warn")

    # ------------------------------------------------------------------ content
    def numbers(self, items: dict[str, Any], caption: str | None = None) -> "Report":
        """A table of named numbers: each value a :class:`Quantity`, a ``(value, unit[, meaning])`` tuple,
        or a plain value/string. Units get their own column, meanings a third one."""
        rows = []
        for name, item in items.items():
            if isinstance(item, tuple):
                item = Quantity(*item)
            if not isinstance(item, Quantity):
                item = Quantity(item)
            if item.error is not None and isinstance(item.value, (int, float)):
                value = pm(float(item.value), float(item.error))
                meaning = "; ".join(x for x in (f"± {item.error_meaning}" if item.error_meaning else "", item.meaning) if x)
            else:
                value, meaning = fmt(item.value, item.digits), item.meaning
            rows.append(f"<tr><td>{html.escape(name)}</td><td>{html.escape(value)}"
                        f"{(' ' + html.escape(item.unit)) if item.unit else ''}</td><td>{html.escape(meaning)}</td></tr>")
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self._close_plots()
        self._parts.append(f"<table class='numbers'>{cap}<tr><th>quantity</th><th>value</th><th>meaning</th></tr>"
                           + "".join(rows) + "</table>")
        return self

    def table(self, header: Sequence[str], rows: Iterable[Sequence[Any]], caption: str | None = None,
              collapsed: str | None = None) -> "Report":
        """A table (numbers formatted with :func:`fmt`); with ``collapsed`` it sits in a ``<details>`` whose
        summary is that text."""
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in rows)
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        block = f"<table>{cap}<tr>{head}</tr>{body}</table>"
        if collapsed:
            block = f"<details><summary>{html.escape(collapsed)}</summary>{block}</details>"
        self._close_plots()
        self._parts.append(block)
        return self

    def figure(self, path: str | Path, caption: str, wide: bool = False) -> "Report":
        """A PNG with its caption (and file name); ``wide`` spans the page (multi-panel figures).

        Raises:
            AnalysisError: the file does not exist or is not a PNG.
        """
        p = Path(path)
        if p.suffix.lower() != ".png":
            raise AnalysisError(f"{p}: report figures must be PNG files")
        if not p.is_file():
            raise AnalysisError(f"{p}: figure for the report not found")
        if not self._open_plots:
            self._parts.append("<div class='plots'>")
            self._open_plots = True
        self.figures.append(p)
        self._parts.append(("figure", p, caption, wide))  # embedded at write time
        return self

    def raw_html(self, snippet: str) -> "Report":
        """Trusted HTML produced by the caller (must not reference external resources)."""
        self._close_plots()
        self._parts.append(snippet)
        return self

    # ------------------------------------------------------------------ output
    def html(self) -> str:
        """The whole page as a string (images embedded)."""
        self._close_plots()
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        sub = f"{html.escape(self.subtitle)} · " if self.subtitle else ""
        out = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
               f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head><body>",
               f"<h1>{html.escape(self.title)}</h1><p class='meta'>{sub}written {stamp}</p>"]
        for part in self._parts:
            if isinstance(part, tuple):
                _, p, caption, wide = part
                data = base64.b64encode(Path(p).read_bytes()).decode()
                cls = " class='wide'" if wide else ""
                out.append(f"<figure{cls}><img alt=\"{html.escape(p.stem)}\" src=\"data:image/png;base64,{data}\">"
                           f"<figcaption>{html.escape(caption)} <code>{html.escape(p.name)}</code></figcaption></figure>")
            else:
                out.append(part)
        out.append("</body></html>")
        return "\n".join(out)

    def write(self, path: str | Path) -> Path:
        """Write the page to ``path`` (parent directories created) and return the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.html(), encoding="utf-8")
        return p


# ---------------------------------------------------------------------- helpers shared by workflow reports
def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON document a workflow wrote, or a one-line error naming the file (the project's one loader)."""
    from analysis.config import load_json

    p = Path(path)
    if not p.is_file():
        raise AnalysisError(f"{p}: not found (run the workflow with this output directory first)")
    return load_json(p)


def pngs_in(directory: str | Path, recursive: bool = True) -> list[Path]:
    """Every PNG under ``directory`` (sorted), for "other plots" sections and tests."""
    d = Path(directory)
    return sorted(d.rglob("*.png") if recursive else d.glob("*.png"))


def add_remaining_figures(rep: Report, directory: str | Path, heading: str = "Other plots",
                          captions: dict[str, str] | None = None) -> None:
    """Add every PNG under ``directory`` that the report does not show yet, so no plot goes unseen."""
    shown = {p.resolve() for p in rep.figures}
    rest = [p for p in pngs_in(directory) if p.resolve() not in shown]
    if rest:
        rep.section(heading)
        for p in rest:
            rep.figure(p, (captions or {}).get(p.stem, p.stem.replace("_", " ")))


def format_duration(seconds: float | None) -> str:
    """``463 s (7 min 43 s)`` style wall time."""
    if seconds is None:
        return "–"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(round(s)), 60)
    h, m = divmod(m, 60)
    return f"{s:.0f} s ({h} h {m} min {sec} s)" if h else f"{s:.0f} s ({m} min {sec} s)"


class Stopwatch:
    """Wall time of a whole workflow: ``sw = Stopwatch()`` at the start, ``sw.elapsed`` at the end."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        """Seconds since construction."""
        return time.perf_counter() - self.start


__all__ = ["CSS", "PM_MEANING", "Quantity", "Report", "Stopwatch", "add_remaining_figures", "fmt",
           "format_duration", "pm", "pngs_in", "read_json"]
