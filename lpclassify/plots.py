"""Pictures of an evaluation: a reliability diagram and a confusion-matrix heat map (matplotlib, optional)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InputError, MissingDependencyError

if TYPE_CHECKING:
    from .evaluation import EvalReport


def write_plots(report: EvalReport, directory: str | Path, *, stem: str = "") -> list[Path]:
    """A reliability diagram and a confusion-matrix heat map as PNG files in ``directory``."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError("plots need matplotlib: pip install 'lpclassify[plot]'") from None
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the plot directory {directory}: {exc.strerror}") from None
    prefix = f"{stem}-" if stem else ""
    title = f"{report.method} calibration, {report.normalize} normalization, n={report.n}"

    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    bins = report.reliability
    centers = (bins.edges[:-1] + bins.edges[1:]) / 2
    width = bins.edges[1] - bins.edges[0]
    filled = bins.count > 0
    ax.bar(centers[filled], bins.accuracy[filled], width=width * 0.9, color="tab:blue", label="accuracy in bin")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    ax.plot(centers[filled], bins.confidence[filled], "_", markersize=14, markeredgewidth=2.5, color="tab:red",
            label="mean confidence in bin")
    ax.bar(centers[filled], bins.count[filled] / max(report.n, 1), width=width * 0.9, color="black", alpha=0.25,
           label="share of texts in bin")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="top-label confidence", ylabel="accuracy",
           title=f"Reliability (ECE {report.ece:.3f})\n{title}")
    ax.legend(loc="upper left")
    reliability = directory / f"{prefix}reliability.png"
    fig.savefig(reliability, dpi=120, bbox_inches="tight")

    fig = Figure(figsize=(1.2 * len(report.labels) + 3, 1.1 * len(report.labels) + 2.5))
    ax = fig.add_subplot()
    matrix = report.confusion
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ticks = range(len(report.labels))
    ax.set_xticks(ticks, report.labels, rotation=45, ha="right")
    ax.set_yticks(ticks, report.labels)
    peak = matrix.max() if matrix.size else 0
    for i in ticks:
        for j in ticks:
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                    color="white" if matrix[i, j] > peak / 2 else "black")
    ax.set(xlabel="predicted", ylabel="true", title=f"Confusion (accuracy {report.accuracy:.3f})\n{title}")
    confusion = directory / f"{prefix}confusion.png"
    fig.savefig(confusion, dpi=120, bbox_inches="tight")
    return [reliability, confusion]
