"""Curves drawn with textual-plotext. They never redraw on their own: a screen calls `draw` from
its timer when the data changed, and `draw` itself re-renders only when the new points change
what the plot shows at the terminal's resolution.

How: the axes get "nice" limits (rounded out to a tenth of a tick step) and ticks, so they stay
put while a run grows; the points are reduced to one mean per plot column; and the whole picture
(limits, ticks, every column's row on a grid twice as fine as the braille dots) is a signature.
Same signature, same picture: nothing is rendered. A fast run therefore costs a plot render only
when a curve visibly moves, not once per event or per timer tick.
"""

from __future__ import annotations

import math

from textual_plotext import PlotextPlot

from tui.runmodel import Series

# plotext's frame around the canvas: y tick labels, axes, title, x labels, legend (approximate)
FRAME_W, FRAME_H = 10, 4


def nice_step(span: float, ticks: int = 4) -> float:
    """A 1-2-5 step giving about `ticks` intervals over `span`."""
    if not span > 0 or not math.isfinite(span):
        return 1.0
    raw = span / ticks
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def nice_axis(lo: float, hi: float, ticks: int = 4) -> tuple[float, float, list[float]]:
    """Limits rounded out to a tenth of a nice tick step (stable while the data grows a little),
    and the ticks inside them."""
    if hi <= lo:
        pad = abs(lo) * 0.05 or 0.5
        lo, hi = lo - pad, hi + pad
    step = nice_step(hi - lo, ticks)
    q = step / 10
    lo2, hi2 = math.floor(lo / q) * q, math.ceil(hi / q) * q
    first = math.ceil(lo2 / step - 1e-9) * step
    out = []
    t = first
    while t <= hi2 + 1e-9 * step and len(out) < 12:
        out.append(round(t, 12))
        t += step
    return lo2, hi2, out


def fmt_tick(t: float, step: float, sci: bool = False) -> str:
    if sci:
        return f"{t:.1e}"
    if abs(t) >= 10000 and step >= 1000:
        return f"{t / 1000:g}k"
    if step >= 1:
        return f"{t:.0f}"
    digits = max(0, -math.floor(math.log10(step)) + (0 if step * 10 ** math.floor(-math.log10(step)) == 1 else 1))
    return f"{t:.{min(digits, 6)}f}"


def columns(xs: list[float], ys: list[float], x0: float, x1: float, cols: int) -> tuple[list[float], list[float]]:
    """One point per plot column: at the column's centre, the mean of the y values that fall in it
    (a column's x does not move while points arrive, so the picture changes only when y does)."""
    if not xs:
        return [], []
    span = (x1 - x0) or 1.0
    sums: dict[int, list[float]] = {}
    for x, y in zip(xs, ys):
        c = min(cols - 1, max(0, int((x - x0) / span * cols)))
        acc = sums.get(c)
        if acc is None:
            sums[c] = [x, y, 1.0]
        else:
            acc[0] += x
            acc[1] += y
            acc[2] += 1
    out_x, out_y = [], []
    for c in sorted(sums):
        _sx, sy, n = sums[c]
        out_x.append(x0 + (c + 0.5) * span / cols)
        out_y.append(sy / n)
    return out_x, out_y


class Curves(PlotextPlot):
    DEFAULT_CSS = """
    Curves { height: 1fr; width: 1fr; min-height: 5; }
    """

    def __init__(self, title: str = "", **kw) -> None:
        super().__init__(**kw)
        self.title = title
        self.signature = None
        self.renders = 0  # plots actually rebuilt (the bench and the tests read it)

    def on_resize(self) -> None:
        self.signature = None  # a new size is a new picture

    def draw(self, lines: list[tuple[str, Series, str]], marks: list[tuple[float, float]] | None = None,
             title: str | None = None, ylog: bool = False, empty: str = "waiting for data",
             sci: bool = False) -> bool:
        """Rebuild the plot when the picture changes; returns whether it did."""
        title = title if title is not None else self.title
        cols = max(8, (self.size.width - FRAME_W) * 2)  # braille: 2 dots per cell across
        rows = max(4, (self.size.height - FRAME_H) * 4)  # and 4 down
        shown = [(label, series, color) for label, series, color in lines if len(series)]
        marks = list(marks or [])
        if not shown:
            sig = ("empty", title, empty, cols, rows)
            if sig == self.signature:
                return False
            self.signature = sig
            plt = self.plt
            plt.clear_figure()
            plt.title(f"{self.title} – {empty}")
            self._rebuilt()
            return True
        xs_all = [x for _, s, _ in shown for x in s.xs] + [m[0] for m in marks]
        ys_all = [y for _, s, _ in shown for y in s.ys] + [m[1] for m in marks]
        if ylog:
            ys_all = [y for y in ys_all if y > 0] or [1.0]
        x0, x1, xt = nice_axis(min(xs_all), max(xs_all))
        ylo, yhi = min(ys_all), max(ys_all)
        if ylog:
            ylo, yhi = math.log10(ylo), math.log10(yhi)
        y0, y1, yt = nice_axis(ylo, yhi, ticks=4)
        ygrid = 2 * rows / ((y1 - y0) or 1.0)
        reduced = []
        sig_lines = []
        for label, series, color in shown:
            rx, ry = columns(series.xs, series.ys, x0, x1, cols)
            reduced.append((label, color, rx, ry))
            qy = [math.log10(y) if ylog and y > 0 else y for y in ry]
            sig_lines.append((label, color, tuple(int((x - x0) / ((x1 - x0) or 1) * 2 * cols) for x in rx),
                              tuple(int((y - y0) * ygrid) for y in qy)))
        sig_marks = tuple((int((mx - x0) / ((x1 - x0) or 1) * 2 * cols), int((my - y0) * ygrid)) for mx, my in marks)
        sig = (title, cols, rows, x0, x1, y0, y1, tuple(sig_lines), sig_marks, ylog, sci)
        if sig == self.signature:
            return False
        self.signature = sig

        plt = self.plt
        plt.clear_figure()
        plt.title(title)
        # no plotext legend: it sits on the top-left corner, where a loss curve starts. The caller's
        # title names the lines; their markers differ, so they stay apart without colour (NO_COLOR)
        for i, (label, color, rx, ry) in enumerate(reduced):
            marker = "braille" if i == 0 else "dot"
            if len(rx) == 1:
                plt.scatter(rx, ry, color=color, marker="dot")
            else:
                plt.plot(rx, ry, color=color, marker=marker)
        if marks:
            plt.scatter([m[0] for m in marks], [m[1] for m in marks], color="green", marker="*")
        xstep = xt[1] - xt[0] if len(xt) > 1 else 1.0
        plt.xlim(x0, x1)
        plt.xticks(xt, [fmt_tick(t, xstep) for t in xt])
        ystep = yt[1] - yt[0] if len(yt) > 1 else 1.0
        if ylog:
            plt.yscale("log")
        else:
            plt.ylim(y0, y1)
            plt.yticks(yt, [fmt_tick(t, ystep, sci) for t in yt])
        plt.xlabel("step")
        self._rebuilt()
        return True

    def _rebuilt(self) -> None:
        self.renders += 1
        self.refresh()
