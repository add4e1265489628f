"""Log axes a student can read: which values to label, and how to write them.

Plotly's own log-axis labels print 0.5 as "5" (its minor labels drop the decade) and leave a
span of less than a decade with a single label or none, which cannot be read at all. Every log
axis of the app (gradient norms, loss surfaces, Fig. 7's responses) is labelled from here.
"""

from __future__ import annotations

import math


def log_ticks(low: float, high: float) -> list[float]:
    """The values to label on a log axis that runs from ``low`` to ``high``: whole decades when
    it spans three or more (0.3 to 2·10⁴ on the shipped surfaces), 1-2-5 steps when it spans
    less, and both ends with their geometric middle (two significant digits, rounded inwards)
    when even those leave fewer than two labels inside (a small span around a minimum: 0.38
    to 0.48)."""
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    mantissas = (1,) if math.log10(high / low) >= 3 else (1, 2, 5)
    inside = [m * 10.0 ** d for d in decades for m in mantissas if low <= m * 10.0 ** d <= high]
    if len(inside) >= 2:
        return inside
    # Two significant digits, rounded inwards, so each label is its tick's exact value.
    step = 10.0 ** (math.floor(math.log10(high)) - 1)
    ends = [math.ceil(low / step) * step, math.floor(high / step) * step]
    return sorted({round(value, 12) for value in (ends[0], round(math.sqrt(ends[0] * ends[1]) / step) * step, ends[1])})


def tick_label(value: float) -> str:
    """A loss as a class reads it: "10,000", "20", "0.38"."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.2g}"


_SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_label(value: float) -> str:
    """A tick as a student reads powers of ten: 10⁻³, 2·10⁻⁴, 5 (no "e-04")."""
    exponent = math.floor(math.log10(value) + 1e-9)
    mantissa = round(value / 10.0 ** exponent, 1)
    if -1 <= exponent <= 2:
        return f"{value:g}"
    power = "10" + str(exponent).translate(_SUPERSCRIPTS)
    return power if mantissa == 1 else f"{mantissa:g}·{power}"
