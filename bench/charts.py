"""The benchmark's tables drawn as SVG charts, one file per table, with matplotlib (dev extra).

Each chart shows what its table's ratios say: how many times the reference app's and the
bare floor's requests/s each scenario reaches, the targets against their limits, and the
BASELINE comparison as paired bars. The text tables stay the record; the charts are for
reading at a glance (the speed page shows them above their tables).
"""

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("svg")  # no display, and the same file on every machine

import matplotlib.pyplot as plt
import report
from matplotlib.axes import Axes

REFERENCE_COLOUR = "#4c72b0"
FLOOR_COLOUR = "#a1a9b8"
MISS_COLOUR = "#c44e52"
PASS_COLOUR = "#55a868"
plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "svg.hashsalt": "mda-bench"})


def file_name(title: str) -> str:
    """`logreg, 10 clients` -> `logreg-10-clients.svg`."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") + ".svg"


def _bar_chart(title: str, heights: int) -> tuple[plt.Figure, Axes]:
    figure, axes = plt.subplots(figsize=(7.5, 0.9 + 0.32 * heights))
    axes.set_title(title, loc="left", fontsize=10)
    axes.invert_yaxis()  # the table's order, top to bottom
    axes.spines[["top", "right"]].set_visible(False)
    return figure, axes


def _save(figure: plt.Figure, folder: Path, title: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name(title)
    figure.tight_layout()
    figure.savefig(path, metadata={"Date": None})  # no timestamp: a rerun changes only figures
    plt.close(figure)
    return path


def _ratio(m: report.Measurement, base: report.Measurement | None) -> float:
    if base is None or not base.result.requests_per_s:
        return math.nan
    return m.result.requests_per_s / base.result.requests_per_s


def table_chart(title: str, rows: list[report.Measurement], folder: Path) -> Path:
    """One model and concurrency: each scenario's requests/s as a multiple of the reference
    app's (else of the table's first scenario, e.g. `MDA_COMPILE=off`) and of the floor's,
    the line at 1 x being the reference."""
    reference = report.find(rows, report.REFERENCE)
    floor = report.find(rows, report.FLOOR)
    base_name = "reference app" if reference is not None else rows[0].scenario
    reference = reference or rows[0]
    labels = [m.scenario for m in rows]
    figure, axes = _bar_chart(title, len(rows))
    width = 0.4 if floor is not None else 0.6
    positions = range(len(rows))
    if reference is not None:
        ratios = [_ratio(m, reference) for m in rows]
        offset = width / 2 if floor is not None else 0.0
        axes.barh([p - offset for p in positions], ratios, width, label=f"x {base_name}",
                  color=REFERENCE_COLOUR)  # fmt: skip
        for p, r in zip(positions, ratios, strict=True):
            if not math.isnan(r):
                axes.text(r, p - offset, f" {r:.2f}", va="center", fontsize=7)
        axes.axvline(1.0, color="black", linewidth=0.8, linestyle="--")
    if floor is not None:
        axes.barh([p + width / 2 for p in positions], [_ratio(m, floor) for m in rows], width,
                  label="x floor (bare ASGI)", color=FLOOR_COLOUR)  # fmt: skip
    axes.set_yticks(list(positions), labels)
    axes.set_xlabel("requests/s, as a multiple")
    axes.legend(loc="lower right", fontsize=7, frameon=False)
    return _save(figure, folder, title)


def targets_chart(targets: list[report.Target], folder: Path) -> Path | None:
    """Every measured target: its ratio as a bar, its limit as a tick, green when met."""
    measured = [t for t in targets if not math.isnan(t.value)]
    if not measured:
        return None
    title = "targets (ratios within this run)"
    figure, axes = _bar_chart(title, len(measured))
    positions = range(len(measured))
    colours = [PASS_COLOUR if t.passed else MISS_COLOUR for t in measured]
    axes.barh(list(positions), [t.value for t in measured], 0.6, color=colours)
    axes.scatter([t.limit for t in measured], list(positions), marker="|", s=300, color="black",
                 zorder=3)  # fmt: skip
    for p, t in zip(positions, measured, strict=True):
        axes.text(t.value, p, f" {t.value:.2f}", va="center", fontsize=7)
    axes.set_yticks(list(positions), [t.name for t in measured], fontsize=7)
    axes.set_xlabel("ratio (black tick: the target's limit; green: met, red: missed)")
    return _save(figure, folder, title)


def write_run(
    measurements: list[report.Measurement], targets: list[report.Target], folder: Path
) -> list[Path]:
    """The charts of one `make bench` run: one per table `report.print_tables` prints, and
    the targets."""
    written = [table_chart(title, rows, folder) for title, rows in report.tables(measurements)]
    drawn = targets_chart(targets, folder)
    return written + ([drawn] if drawn else [])


def baseline_chart(
    title: str, rows: list[tuple[str, float, float, float]], folder: Path, ref: str
) -> Path:
    """`make bench BASELINE=ref`: (case, this tree, the baseline, the paired ratio) as paired
    bars in the case's own unit (rows/s or requests/s), each pair labelled with its ratio."""
    figure, axes = _bar_chart(title, len(rows))
    width = 0.4
    positions = range(len(rows))
    axes.barh([p - width / 2 for p in positions], [r[1] for r in rows], width,
              label="this tree", color=REFERENCE_COLOUR)  # fmt: skip
    axes.barh([p + width / 2 for p in positions], [r[2] for r in rows], width,
              label=ref, color=FLOOR_COLOUR)  # fmt: skip
    for p, (_, mine, _, ratio) in zip(positions, rows, strict=True):
        axes.text(mine, p - width / 2, f" {ratio:.2f}x", va="center", fontsize=7)
    axes.set_yticks(list(positions), [r[0] for r in rows])
    axes.set_xlabel("requests/s (rows/s for multi-row cases)")
    axes.legend(loc="lower right", fontsize=7, frameon=False)
    return _save(figure, folder, title)
