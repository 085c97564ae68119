"""Lineage: model version -> feature views (version, fingerprint) -> data snapshots -> code.

A version's :class:`Lineage` lists the feature views it was trained on (each with its
version and definition fingerprint, and the snapshots it was built from) and the dataset
snapshots (content hashes). Together with the training code revision from the metadata
this gives the graph that answers "how did we get here?" and, read backwards, "which
models does a change to feature view X v3 affect?" (``ModelRegistry.dependents``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import DefinitionError, ValidationError

__all__ = ["FeatureRef", "DataSnapshot", "Lineage", "lineage_graph", "draw_lineage"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ROLES = ("training", "validation", "evaluation", "golden", "other")


@dataclass(frozen=True, kw_only=True)
class DataSnapshot:
    """An immutable dataset snapshot identified by the sha256 of its content."""

    name: str
    sha256: str | None
    role: str = "training"
    rows: int | None = None
    as_of: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise DefinitionError(f"DataSnapshot: name must be a non-empty string, got {self.name!r}.",
                                  fix="Name the snapshot, e.g. name='train_2024_03'.")
        if self.sha256 is not None and (not isinstance(self.sha256, str) or not _HEX64.match(self.sha256)):
            raise DefinitionError(f"DataSnapshot {self.name!r}: sha256 must be 64 lowercase hex characters, "
                                  f"got {self.sha256!r}.", fix="Pass sha256_file(path) of the snapshot.")
        if self.role not in _ROLES:
            raise DefinitionError(f"DataSnapshot {self.name!r}: role must be one of {_ROLES}, got {self.role!r}.",
                                  fix="Pick the snapshot's role.")
        if self.rows is not None and (isinstance(self.rows, bool) or not isinstance(self.rows, int) or self.rows < 0):
            raise DefinitionError(f"DataSnapshot {self.name!r}: rows must be an int >= 0, got {self.rows!r}.",
                                  fix="Pass len(df).")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "role": self.role, "rows": self.rows,
                "as_of": self.as_of}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DataSnapshot":
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


@dataclass(frozen=True, kw_only=True)
class FeatureRef:
    """A feature view a model reads: its name, version, definition fingerprint and features."""

    view: str
    version: int | None
    fingerprint: str | None
    features: tuple[str, ...] = ()
    snapshots: tuple[str, ...] = ()  # names of the DataSnapshots the view's rows came from

    def __post_init__(self) -> None:
        if not isinstance(self.view, str) or not self.view:
            raise DefinitionError(f"FeatureRef: view must be a non-empty string, got {self.view!r}.",
                                  fix="Pass the feature view name, e.g. view='user_stats'.")
        if self.version is not None and (isinstance(self.version, bool) or not isinstance(self.version, int)
                                         or self.version < 1):
            raise DefinitionError(f"FeatureRef {self.view!r}: version must be an int >= 1, got {self.version!r}.",
                                  fix="Pass the view's version, e.g. version=3.")
        if self.fingerprint is not None and (not isinstance(self.fingerprint, str) or not self.fingerprint):
            raise DefinitionError(f"FeatureRef {self.view!r}: fingerprint must be a non-empty string, "
                                  f"got {self.fingerprint!r}.", fix="Pass the view definition's fingerprint.")
        for name in ("features", "snapshots"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise DefinitionError(f"FeatureRef {self.view!r}: {name} must be a list of strings, got {value!r}.",
                                      fix=f"Pass {name}=['...', ...].")
            object.__setattr__(self, name, tuple(value))

    def to_dict(self) -> dict[str, Any]:
        return {"view": self.view, "version": self.version, "fingerprint": self.fingerprint,
                "features": list(self.features), "snapshots": list(self.snapshots)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FeatureRef":
        return cls(view=data["view"], version=data.get("version"), fingerprint=data.get("fingerprint"),
                   features=tuple(data.get("features", ())), snapshots=tuple(data.get("snapshots", ())))


@dataclass(frozen=True, kw_only=True)
class Lineage:
    """Where a model version came from: feature views and dataset snapshots."""

    features: tuple[FeatureRef, ...] = ()
    snapshots: tuple[DataSnapshot, ...] = ()

    def __post_init__(self) -> None:
        for name, kind in (("features", FeatureRef), ("snapshots", DataSnapshot)):
            value = tuple(getattr(self, name))
            if not all(isinstance(item, kind) for item in value):
                raise DefinitionError(f"Lineage: {name} must hold {kind.__name__} objects.",
                                      fix=f"Build each entry with {kind.__name__}(...).")
            object.__setattr__(self, name, value)
        snapshot_names = [s.name for s in self.snapshots]
        if len(set(snapshot_names)) != len(snapshot_names):
            raise DefinitionError(f"Lineage: duplicate snapshot names {snapshot_names}.",
                                  fix="Give each snapshot a unique name.")
        for ref in self.features:
            unknown = sorted(set(ref.snapshots) - set(snapshot_names))
            if unknown:
                raise DefinitionError(f"Lineage: feature view {ref.view!r} names unknown snapshots {unknown}.",
                                      fix="List those snapshots in Lineage(snapshots=...).")

    def missing(self) -> list[str]:
        """Every absent part of the lineage core (empty list when complete)."""
        gaps: list[str] = []
        if not self.features:
            gaps.append("lineage.features")
        for ref in self.features:
            if ref.version is None:
                gaps.append(f"lineage.features[{ref.view!r}].version")
            if ref.fingerprint is None:
                gaps.append(f"lineage.features[{ref.view!r}].fingerprint")
        if not self.snapshots:
            gaps.append("lineage.snapshots")
        gaps.extend(f"lineage.snapshots[{s.name!r}].sha256" for s in self.snapshots if s.sha256 is None)
        return gaps

    def to_dict(self) -> dict[str, Any]:
        return {"features": [f.to_dict() for f in self.features],
                "snapshots": [s.to_dict() for s in self.snapshots]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Lineage":
        return cls(features=tuple(FeatureRef.from_dict(f) for f in data.get("features", ())),
                   snapshots=tuple(DataSnapshot.from_dict(s) for s in data.get("snapshots", ())))


def lineage_graph(documents: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Any:
    """Build a ``networkx.DiGraph`` from one or more ``ModelRegistry.lineage()`` documents.

    Nodes carry ``kind`` (model, feature_view, snapshot, code) and a ``label``; edges point
    from a model version to what it depends on.
    """
    import networkx as nx

    docs = [documents] if isinstance(documents, Mapping) else list(documents)
    if not docs or not all(isinstance(d, Mapping) and "model" in d for d in docs):
        raise ValidationError("lineage_graph: pass one or more documents returned by registry.lineage(name, version).",
                              fix="e.g. lineage_graph(registry.lineage('fraud', 2)).")
    graph = nx.DiGraph()
    for doc in docs:
        model = f"model:{doc['model']['name']} v{doc['model']['version']}"
        graph.add_node(model, kind="model", label=f"{doc['model']['name']}\nv{doc['model']['version']}")
        code = f"code:{doc['code']['revision']}"
        graph.add_node(code, kind="code", label=f"code\n{str(doc['code']['revision'])[:10]}")
        graph.add_edge(model, code, relation="trained_by")
        snap_nodes = {}
        for snap in doc["lineage"]["snapshots"]:
            node = f"snapshot:{snap['sha256']}"
            snap_nodes[snap["name"]] = node
            graph.add_node(node, kind="snapshot", label=f"{snap['name']}\n{str(snap['sha256'])[:10]}")
            graph.add_edge(node, code, relation="processed_by")
        used = set()
        for ref in doc["lineage"]["features"]:
            node = f"view:{ref['view']} v{ref['version']}"
            graph.add_node(node, kind="feature_view", label=f"{ref['view']}\nv{ref['version']}",
                           fingerprint=ref["fingerprint"])
            graph.add_edge(model, node, relation="reads")
            for name in ref["snapshots"]:
                graph.add_edge(node, snap_nodes[name], relation="built_from")
                used.add(name)
        for name, node in snap_nodes.items():
            if name not in used:
                graph.add_edge(model, node, relation="trained_on")
    return graph


def _wrap(name: str, width: int = 12) -> str:
    """Break a long identifier at underscores so it fits inside a node."""
    lines, current = [], ""
    for part in str(name).split("_"):
        piece = part if not current else f"{current}_{part}"
        if current and len(piece) > width:
            lines.append(current + "_")
            current = part
        else:
            current = piece
    return "\n".join([*lines, current])


_COLORS = {"model": "#4C72B0", "feature_view": "#55A868", "snapshot": "#C44E52", "code": "#8172B2"}
_LAYER = {"model": 0, "feature_view": 1, "snapshot": 2, "code": 3}


def draw_lineage(documents: Mapping[str, Any] | Iterable[Mapping[str, Any]], *, title: str = "Lineage") -> Any:
    """Draw the lineage graph (models left, code right) and return a matplotlib ``Figure``."""
    import networkx as nx
    from matplotlib.figure import Figure

    graph = lineage_graph(documents if isinstance(documents, Mapping) else list(documents))
    layers: dict[int, list[str]] = {}
    for node, data in graph.nodes(data=True):
        layers.setdefault(_LAYER[data["kind"]], []).append(node)
    pos = {}
    for layer, nodes in layers.items():
        for index, node in enumerate(sorted(nodes)):
            pos[node] = (layer, -index + (len(nodes) - 1) / 2)
    height = max(3.0, 1.1 * max(len(n) for n in layers.values()))
    fig = Figure(figsize=(10, height))
    ax = fig.add_subplot()
    colors = [_COLORS[graph.nodes[n]["kind"]] for n in graph.nodes]
    nx.draw_networkx_nodes(graph, pos, ax=ax, node_color=colors, node_size=2600, alpha=0.9)
    kinds = {n: graph.nodes[n]["kind"] for n in graph.nodes}
    skips = [(u, v) for u, v in graph.edges if abs(_LAYER[kinds[u]] - _LAYER[kinds[v]]) > 1]
    nx.draw_networkx_edges(graph, pos, ax=ax, edgelist=[e for e in graph.edges if e not in set(skips)],
                           arrows=True, arrowsize=14, node_size=2600)
    # edges that skip a layer are curved and dashed so they never look like they pass through a node
    nx.draw_networkx_edges(graph, pos, ax=ax, edgelist=skips, arrows=True, arrowsize=12, node_size=2600,
                           style="dashed", edge_color="#777777", connectionstyle="arc3,rad=0.18")
    labels = {n: "\n".join(_wrap(part) for part in d["label"].split("\n")) for n, d in graph.nodes(data=True)}
    nx.draw_networkx_labels(graph, pos, ax=ax, labels=labels,
                            font_size=7, font_color="white")
    for kind, layer in _LAYER.items():
        ax.text(layer, max(y for _, y in pos.values()) + 0.9, kind.replace("_", " "), ha="center",
                fontsize=9, color=_COLORS[kind])
    ax.set_title(title, pad=22)
    ax.axis("off")
    ax.margins(0.15)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.9, bottom=0.02)
    return fig
