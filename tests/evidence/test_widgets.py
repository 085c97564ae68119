"""``explore``: the first view is ordinary output; later views only when a control moves."""

from __future__ import annotations

import ipywidgets as widgets
import pytest

from mlops_kit.errors import ValidationError
from mlops_kit.evidence import explore


def test_explore_draws_initial_view_then_redraws_on_change(capsys):
    calls = []

    def view(magnitude, kind):
        calls.append((magnitude, kind))
        return magnitude * 2

    slider = widgets.FloatSlider(value=0.25, min=0, max=1, step=0.05)
    menu = widgets.Dropdown(options=["drift", "outage"], value="drift")
    assert explore(view, magnitude=slider, kind=menu) == 0.5
    assert calls == [(0.25, "drift")]
    slider.value = 0.5  # observers fire when code sets a value, as when a person drags
    menu.value = "outage"
    assert calls == [(0.25, "drift"), (0.5, "drift"), (0.5, "outage")]
    assert "initial view" in capsys.readouterr().out


@pytest.mark.parametrize("fn, controls, match", [
    (None, {"x": widgets.IntSlider()}, "callable"),
    (print, {}, "no controls"),
    (print, {"x": 3}, "not ipywidgets"),
])
def test_explore_refuses_bad_input(fn, controls, match):
    with pytest.raises(ValidationError, match=match):
        explore(fn, **controls)
