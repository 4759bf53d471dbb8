"""Pure Python core of the equity-research model (forecast methods, ratios, rating, engine)
and, in `udfs.xl`, the thin xlwings layer that exposes it to Excel."""


def excel_functions() -> dict:
    """Every Excel function name mapped to the Python callable that Excel's call reaches."""
    from .xl import exposed
    return exposed()
