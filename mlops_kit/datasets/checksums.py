"""Regenerate or verify ``data/checksums.json`` and ``data/scenarios/*.json``.

Run after an intended change to the generator, and commit ``data/``::

    python -m mlops_kit.datasets.checksums --update
    python -m mlops_kit.datasets.checksums --check
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._io import atomic_write_json
from ..errors import IntegrityError, NotFoundError
from ._checksums import compute_checksums, default_data_dir, verify_checksums, write_scenarios

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """``--update`` rewrites ``data/checksums.json`` and the scenario files; ``--check`` verifies."""
    parser = argparse.ArgumentParser(prog="python -m mlops_kit.datasets.checksums",
                                     description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--update", action="store_true", help="regenerate and record the checksums")
    group.add_argument("--check", action="store_true", help="regenerate and compare with the record")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding checksums.json")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or default_data_dir()
    if args.update:
        record = compute_checksums()
        atomic_write_json(data_dir / "checksums.json", record)
        write_scenarios(data_dir / "scenarios")
        print(f"wrote {data_dir / 'checksums.json'} (fingerprint {record['fingerprint'][:16]}...)")
        return 0
    try:
        result = verify_checksums(data_dir / "checksums.json")
    except (IntegrityError, NotFoundError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"OK: fingerprint {result['fingerprint'][:16]}..., "
          f"file hashes {'compared' if result['files_compared'] else 'skipped (other pyarrow)'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
