"""Interactive explorers that stay safe under papermill and nbval.

``ipywidgets.interact`` runs its function inside an ``Output`` widget; with no frontend the
captured output travels over comm messages, and a headless run can stall waiting on them.
``explore`` keeps the widget a thin wrapper instead: it draws the first view as ordinary cell
output (what papermill, nbval and the HTML page show) and redraws into its panel only when a
person moves a control, so a headless run never executes anything inside the widget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ValidationError

__all__ = ["explore"]


def explore(fn: Callable[..., Any], /, **controls: Any) -> Any:
    """Show ``controls`` above a panel that re-runs ``fn(**values)`` when any of them changes.

    Parameters
    ----------
    fn:
        A plain function taking one keyword argument per control; the headless path can call
        it directly with the same arguments.
    **controls:
        ipywidgets value widgets (``IntSlider``, ``FloatSlider``, ``Dropdown`` ...), keyed by
        ``fn``'s argument names.

    Returns
    -------
    The value ``fn`` returned for the controls' initial values (the first view is drawn as
    ordinary cell output, so it is what a headless run records).
    """
    if not callable(fn):
        raise ValidationError(
            f"explore: fn must be callable, got {type(fn).__name__}.",
            fix="Pass the plain function that draws one view, e.g. explore(show_drift, magnitude=slider).",
        )
    if not controls:
        raise ValidationError(
            "explore: no controls given.",
            fix="Pass at least one widget keyed by an argument name of fn, e.g. magnitude=FloatSlider(...).",
        )
    missing = [name for name, widget in controls.items() if not hasattr(widget, "observe")
               or not hasattr(widget, "value")]
    if missing:
        raise ValidationError(
            f"explore: controls {missing} are not ipywidgets value widgets.",
            fix="Pass widgets such as ipywidgets.IntSlider(...) or Dropdown(...).",
        )
    import ipywidgets as widgets
    from IPython.display import display

    panel = widgets.Output()

    def values() -> dict[str, Any]:
        return {name: widget.value for name, widget in controls.items()}

    def redraw(_change: Any) -> None:
        panel.clear_output(wait=True)
        with panel:
            fn(**values())

    for widget in controls.values():
        widget.observe(redraw, names="value")
    display(widgets.VBox([*controls.values(), panel]))
    print("Move a control: its view is redrawn in the panel just above. The initial view:")
    return fn(**values())
