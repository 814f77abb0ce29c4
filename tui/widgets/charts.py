"""Curves drawn with textual-plotext. They never redraw on their own: a screen calls `draw` from
its ~4 Hz timer when the data changed, so a fast run costs a few renders per second at most."""

from __future__ import annotations

from textual_plotext import PlotextPlot

from tui.runmodel import Series


def _thin(xs: list[float], ys: list[float], n: int) -> tuple[list[float], list[float]]:
    """At most ~n points for the terminal's width (every k-th point, always the last)."""
    if len(xs) <= n or n <= 0:
        return xs, ys
    k = len(xs) / n
    idx = [int(i * k) for i in range(n)]
    if idx[-1] != len(xs) - 1:
        idx.append(len(xs) - 1)
    return [xs[i] for i in idx], [ys[i] for i in idx]


class Curves(PlotextPlot):
    DEFAULT_CSS = """
    Curves { height: 1fr; width: 1fr; min-height: 5; }
    """

    def __init__(self, title: str = "", **kw) -> None:
        super().__init__(**kw)
        self.title = title

    def draw(self, lines: list[tuple[str, Series, str]], marks: list[tuple[float, float]] | None = None,
             title: str | None = None, ylog: bool = False, empty: str = "waiting for data",
             sci: bool = False) -> None:
        plt = self.plt
        plt.clear_figure()
        plt.title(title if title is not None else self.title)
        width = max(10, self.size.width * 2)
        any_data = False
        for label, series, color in lines:
            if len(series) == 0:
                continue
            any_data = True
            xs, ys = _thin(series.xs, series.ys, width)
            if len(xs) == 1:
                plt.scatter(xs, ys, label=label, color=color, marker="dot")
            else:
                plt.plot(xs, ys, label=label, color=color, marker="braille")
        if marks:
            plt.scatter([m[0] for m in marks], [m[1] for m in marks], label="best", color="green", marker="*")
        if not any_data:
            plt.title(f"{self.title} – {empty}")
        if ylog and any_data:
            plt.yscale("log")
        if sci and any_data:
            ys = [y for _, series, _ in lines for y in series.ys]
            lo, hi = min(ys), max(ys)
            if hi > lo:
                ticks = [lo + (hi - lo) * i / 3 for i in range(4)]
                plt.yticks(ticks, [f"{t:.1e}" for t in ticks])
        plt.xlabel("step")
        self.refresh()
