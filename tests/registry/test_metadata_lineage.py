"""Required metadata core, environment capture, lineage documents, graph and drawing."""

from __future__ import annotations

import importlib.metadata
import json
import platform

import pytest
from registry_helpers import lineage, metadata, register

from mlops_kit.errors import ValidationError
from mlops_kit.registry import (
    DataSnapshot,
    FeatureRef,
    Lineage,
    ModelMetadata,
    capture_environment,
    draw_lineage,
    lineage_graph,
)


def test_missing_lists_everything_absent():
    assert ModelMetadata().missing() == [
        "metadata.code_revision", "metadata.training_run_id", "metadata.environment.python",
        "metadata.environment.packages", "metadata.parameters", "metadata.metrics"]
    assert metadata().missing() == []
    assert Lineage().missing() == ["lineage.features", "lineage.snapshots"]
    partial = Lineage(features=(FeatureRef(view="a", version=2, fingerprint=None),),
                      snapshots=(DataSnapshot(name="s", sha256=None),))
    assert partial.missing() == ["lineage.features['a'].fingerprint", "lineage.snapshots['s'].sha256"]


def test_capture_environment_matches_importlib_and_platform():
    env = capture_environment(["numpy", "scikit-learn", "surely-not-installed-pkg"])
    assert env["python"] == platform.python_version()
    assert env["packages"]["numpy"] == importlib.metadata.version("numpy")
    assert env["packages"]["scikit-learn"] == importlib.metadata.version("scikit-learn")
    assert env["packages"]["surely-not-installed-pkg"] is None
    with pytest.raises(ValidationError):
        capture_environment("numpy")
    with pytest.raises(ValidationError):
        capture_environment([""])


def test_lineage_document_and_graph(registry):
    register(registry, view_version=3)
    doc = registry.lineage("fraud", 1)
    assert json.loads(json.dumps(doc)) == doc  # JSON-ready
    assert doc["code"] == {"revision": "a1b2c3d", "training_run_id": "run-1"}
    assert doc["lineage"] == lineage(3).to_dict()
    graph = lineage_graph(doc)
    snap = f"snapshot:{lineage(3).snapshots[0].sha256}"
    assert set(graph.edges) == {("model:fraud v1", "view:user_stats v3"), ("view:user_stats v3", snap),
                                (snap, "code:a1b2c3d"), ("model:fraud v1", "code:a1b2c3d")}
    assert graph.nodes["view:user_stats v3"]["fingerprint"] == "fp-user-stats-v3"


def test_snapshots_not_tied_to_a_view_hang_off_the_model():
    doc = {"model": {"name": "m", "version": 1}, "code": {"revision": "r"},
           "lineage": {"features": [], "snapshots": [{"name": "eval", "sha256": "e" * 64}]}}
    assert ("model:m v1", "snapshot:" + "e" * 64) in lineage_graph(doc).edges


def test_draw_lineage_returns_a_figure_with_every_node(registry):
    from matplotlib.figure import Figure

    register(registry, view_version=3)
    register(registry, seed=1, view_version=4)
    fig = draw_lineage([registry.lineage("fraud", 1), registry.lineage("fraud", 2)], title="fraud lineage")
    assert isinstance(fig, Figure)
    labels = {t.get_text() for t in fig.axes[0].texts}
    assert {"fraud\nv1", "fraud\nv2", "user_stats\nv3", "user_stats\nv4"} <= labels
    with pytest.raises(ValidationError):
        lineage_graph([{"no": "model"}])


def test_lineage_labels_wrap_long_names_without_losing_characters():
    from mlops_kit.registry.lineage import _wrap

    for name in ("fraud", "user_profile_features", "user_transaction_stats", "a_b_c_d_e_f_g_h_i_j"):
        wrapped = _wrap(name)
        assert wrapped.replace("\n", "") == name
        assert all(len(line) <= 13 for line in wrapped.split("\n")) or "_" not in name
