"""Line charts of rates (0..1 on both axes) as inline SVG drawn on the server: no chart library, no
script; colours come from classes in static/classifier/admin.css (the CSP refuses style attributes)."""

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT = 360, 260
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 52  # room for the ticks, the axis names and the legend
TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)


def x_of(value: float) -> float:
    return round(LEFT + value * (WIDTH - LEFT - RIGHT), 1)


def y_of(value: float) -> float:
    return round(HEIGHT - BOTTOM - value * (HEIGHT - TOP - BOTTOM), 1)


def line_chart(*, title: str, x_name: str, y_name: str, series: list[tuple[str, list[tuple[float, float]]]],
               marker: tuple[float, str] | None = None, diagonal: bool = False) -> SafeString:
    """An SVG with a line per (name, points) of `series`, a legend, and optionally a vertical
    marker at (x, its name) and the chance diagonal."""
    grid = format_html_join(
        "",
        '<line class="chart-grid" x1="{}" y1="{}" x2="{}" y2="{}"/><line class="chart-grid" x1="{}" y1="{}" x2="{}" '
        'y2="{}"/><text class="chart-tick" x="{}" y="{}" text-anchor="end">{}</text>'
        '<text class="chart-tick" x="{}" y="{}" text-anchor="middle">{}</text>',
        (
            (x_of(0), y_of(tick), x_of(1), y_of(tick), x_of(tick), y_of(0), x_of(tick), y_of(1),
             x_of(0) - 4, y_of(tick) + 4, f"{tick:g}", x_of(tick), y_of(0) + 14, f"{tick:g}")
            for tick in TICKS
        ),
    )
    lines = format_html_join(
        "",
        '<polyline class="chart-line chart-line-{}" fill="none" points="{}"><title>{}</title></polyline>',
        ((index, " ".join(f"{x_of(x)},{y_of(y)}" for x, y in points), name)
         for index, (name, points) in enumerate(series)),
    )
    legend = format_html_join(
        "",
        '<line class="chart-line chart-line-{}" x1="{}" y1="{}" x2="{}" y2="{}"/>'
        '<text class="chart-legend" x="{}" y="{}">{}</text>',
        ((index, LEFT + 110 * index, HEIGHT - 8, LEFT + 110 * index + 16, HEIGHT - 8,
          LEFT + 110 * index + 20, HEIGHT - 4, name) for index, (name, _) in enumerate(series)),
    )
    chance = format_html('<line class="chart-chance" x1="{}" y1="{}" x2="{}" y2="{}"/>', x_of(0), y_of(0), x_of(1),
                         y_of(1)) if diagonal else ""
    mark = format_html(
        '<line class="chart-marker" x1="{}" y1="{}" x2="{}" y2="{}"/><text class="chart-tick" x="{}" y="{}">{}</text>',
        x_of(marker[0]), y_of(0), x_of(marker[0]), y_of(1), x_of(marker[0]) + 3, y_of(1) + 10, marker[1],
    ) if marker else ""
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" width="{}" height="{}" role="img" aria-label="{}"><title>{}</title>'
        '{}{}{}{}{}<text class="chart-axis" x="{}" y="{}" text-anchor="middle">{}</text>'
        '<text class="chart-axis" x="12" y="{}" text-anchor="middle" transform="rotate(-90 12 {})">{}</text></svg>',
        WIDTH, HEIGHT, WIDTH, HEIGHT, title, title, grid, chance, lines, mark, legend,
        (x_of(0) + x_of(1)) / 2, y_of(0) + 28, x_name, (y_of(0) + y_of(1)) / 2, (y_of(0) + y_of(1)) / 2, y_name,
    )


def roc_chart(curves: dict) -> SafeString:
    return line_chart(
        title=f"ROC curve ({curves['split']}, positive: {curves['positive']})", x_name="false positive rate",
        y_name="true positive rate", series=[("ROC", curves["roc"])], diagonal=True,
    )


def precision_recall_chart(curves: dict) -> SafeString:
    return line_chart(
        title=f"Precision–recall curve ({curves['split']}, positive: {curves['positive']})", x_name="recall",
        y_name="precision", series=[("precision", curves["pr"])],
    )


def threshold_chart(curves: dict) -> SafeString:
    """Accuracy, precision and recall against the threshold on P(positive), the chosen one marked.
    Each is a step: constant between two photos' scores."""
    return line_chart(
        title=f"Scores by threshold ({curves['split']}, positive: {curves['positive']})",
        x_name=f"threshold on P({curves['positive']})", y_name="score",
        series=[(name, threshold_steps(curves["sweep"], name)) for name in ("accuracy", "precision", "recall")],
        marker=(curves["threshold"], f"in use {curves['threshold']:.2f}"),
    )


def threshold_steps(sweep: list[dict], name: str) -> list[tuple[float, float]]:
    """Points of the step line of `name` over thresholds 0..1: a threshold t scores like the
    lowest photo score at or above it (the sweep's rows), nothing positive above the highest."""
    rows = sorted(sweep, key=lambda row: row["threshold"])
    points, start = [], 0.0
    for row in rows:
        end = min(row["threshold"], 1.0)
        if end >= start:
            points += [(start, row[name]), (end, row[name])]
            start = end
        if end >= 1.0:
            break
    return points
