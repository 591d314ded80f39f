"""How numbers and labels read wherever a person reads them (admin and upload page alike).

static/classifier/format.js applies the same rules in the browser, with the same arithmetic, so a
reload never turns one figure into another; tests hold the two to the same outputs.
"""

import math

from django import template

register = template.Library()
DASH = "–"


@register.filter
def percentage(value) -> str:
    """A share in tenths of a percent: 0.97143 → "97.1 %". "100 %" and "0 %" only for exactly 1
    and 0; closer to them it reads "> 99.9 %" and "< 0.1 %". Missing values show as a dash."""
    if value is None or value == "":
        return DASH
    value = float(value)
    if value in (0.0, 1.0):
        return f"{value * 100:.0f} %"
    tenths = math.floor(value * 1000 + 0.5)  # format.js: Math.floor(value * 1000 + 0.5), the same double
    if tenths >= 1000 and value < 1:
        return "> 99.9 %"
    if tenths <= 0 < value:
        return "< 0.1 %"
    return f"{tenths // 10}.{tenths % 10} %"


@register.filter
def label_text(name) -> str:
    """A label as a person reads it: "not_coffee" → "not coffee"."""
    return str(name or "").replace("_", " ")


@register.filter
def milliseconds(value) -> str:
    """A duration in ms: one decimal below 10 ms, whole ms with thousands separated above."""
    if value is None or value == "":
        return DASH
    value = float(value)
    if value < 10:
        tenths = math.floor(value * 10 + 0.5)
        return f"{tenths // 10}.{tenths % 10} ms"
    return f"{math.floor(value + 0.5):,} ms".replace(",", " ")
