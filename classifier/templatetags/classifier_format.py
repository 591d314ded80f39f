from django import template

register = template.Library()


@register.filter
def percentage(value) -> str:
    """0.97143 → "97.14 %"; missing values show as a dash."""
    if value is None or value == "":
        return "–"
    return f"{float(value) * 100:.2f} %"
