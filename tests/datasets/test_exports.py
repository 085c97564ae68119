"""The public surface of mlops_kit.datasets is exactly its __all__."""

from __future__ import annotations

import importlib
import types

import mlops_kit.datasets as datasets


def test_all_matches_public_names():
    public = {name for name, value in vars(datasets).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert set(datasets.__all__) == public
    assert len(datasets.__all__) == len(set(datasets.__all__))


def test_import_has_no_side_effects(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    importlib.reload(datasets)
    assert list(tmp_path.iterdir()) == []


def test_checksums_command_line(tmp_path, capsys):
    from mlops_kit.datasets import checksums

    assert checksums.main(["--check", "--data-dir", str(tmp_path)]) == 1
    assert "does not exist" in capsys.readouterr().err
