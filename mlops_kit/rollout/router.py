"""Deterministic, sticky traffic routing by a salted hash of a stable key.

Each key (user id, account id ...) is hashed with BLAKE2b together with a salt into one of
``BUCKETS`` = 10,000 buckets. The hash does not depend on the process, the Python hash seed
or the order of the keys, so the same key lands in the same bucket everywhere. Arms own
contiguous bucket ranges laid out in the order of ``Router.arms``: the first arm owns
``[0, w1 * 100)``, the next ``[w1 * 100, (w1 + w2) * 100)`` and so on (weights in percent,
0.01 % resolution). Growing the first arm's weight only extends its range, so a key in the
canary at 5 % is still in it at 25 % (stickiness). Cohort overrides force whole segments to
one arm (e.g. make sure a rare, critical segment is covered by the canary).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from ..errors import DefinitionError, ValidationError

__all__ = ["BUCKETS", "Router", "bucket_of", "validate_weights"]

BUCKETS = 10_000


def _key_array(keys: Any, name: str = "keys") -> np.ndarray:
    arr = np.asarray(keys)
    if arr.ndim != 1:
        raise ValidationError(
            f"{name} must be a 1-D array of ids, got shape {arr.shape}.",
            fix="Pass a list, Series or 1-D numpy array of integer or string keys.",
        )
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind in "UO":
        arr = arr.astype(object)
        bad = [k for k in arr[: min(len(arr), 1_000_000)] if not isinstance(k, (str, int, np.integer))
               or isinstance(k, (bool, np.bool_))]
        if bad:
            raise ValidationError(
                f"{name} must hold only integers or strings, got {bad[0]!r} "
                f"({type(bad[0]).__name__}).",
                fix="Drop or fill null keys and cast ids to int or str before routing.",
            )
        return arr
    raise ValidationError(
        f"{name} must hold integer or string ids, got dtype {arr.dtype}.",
        fix="Route on a stable id column (user_id, account_id); cast floats to int first.",
    )


def bucket_of(keys: Any, *, salt: str) -> np.ndarray:
    """Return the bucket (0..9,999) of every key for ``salt``.

    The bucket is ``blake2b(salt + "\\x1f" + str(key), 8 bytes) mod 10,000``; an integer key and
    its decimal string share a bucket. Each distinct key is hashed once.

    Parameters
    ----------
    keys:
        1-D sequence of integer or string ids.
    salt:
        Non-empty string; a different salt gives an independent assignment.

    Returns
    -------
    numpy.ndarray
        ``int32`` buckets aligned with ``keys``.

    Examples
    --------
    >>> b = bucket_of([1, 2, 1], salt="demo")
    >>> int(b[0]) == int(b[2]) and 0 <= int(b[1]) < 10_000
    True
    """
    if not isinstance(salt, str) or not salt:
        raise ValidationError(
            f"bucket_of: salt must be a non-empty string, got {salt!r}.",
            fix="Pass a per-experiment salt such as salt='fraud-v2-canary'.",
        )
    arr = _key_array(keys)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int32)
    if arr.dtype == object:
        arr = np.array([str(k) for k in arr], dtype=object)
    uniq, inverse = np.unique(arr, return_inverse=True)
    prefix = (salt + "\x1f").encode()
    hashed = np.fromiter(
        (int.from_bytes(hashlib.blake2b(prefix + str(k).encode(), digest_size=8).digest(), "big")
         % BUCKETS for k in uniq.tolist()),
        dtype=np.int32, count=len(uniq),
    )
    return hashed[inverse.reshape(-1)]


def validate_weights(weights: Mapping[str, float], arms: Sequence[str]) -> dict[str, float]:
    """Check a traffic split and return it as ``{arm: percent}`` in ``arms`` order.

    Every arm must appear, each weight must be a number in [0, 100] with at most two
    decimals (0.01 % = one bucket), and the weights must sum to 100.
    """
    if not isinstance(weights, Mapping):
        raise ValidationError(
            f"weights must be a mapping arm -> percent, got {type(weights).__name__}.",
            fix=f"Pass e.g. {{{arms[0]!r}: 5, {arms[-1]!r}: 95}}.",
        )
    unknown = sorted(set(weights) - set(arms))
    missing = [a for a in arms if a not in weights]
    if unknown or missing:
        raise ValidationError(
            f"weights name unknown arms {unknown} / miss arms {missing}; the router's arms are "
            f"{list(arms)}.",
            fix="Give one weight per arm, e.g. {'candidate': 5, 'stable': 95}.",
        )
    out: dict[str, float] = {}
    for arm in arms:
        w = weights[arm]
        if isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating)) \
                or not np.isfinite(w) or not 0 <= w <= 100:
            raise ValidationError(
                f"weight of arm {arm!r} must be a percent in [0, 100], got {w!r}.",
                fix="Use percent values such as 5, 25, 50, 100.",
            )
        if abs(float(w) * 100 - round(float(w) * 100)) > 1e-6:
            raise ValidationError(
                f"weight of arm {arm!r} is {w!r}: finer than one bucket (0.01 %).",
                fix="Round weights to two decimals.",
            )
        out[arm] = float(w)
    if abs(sum(out.values()) - 100.0) > 1e-6:
        raise ValidationError(
            f"weights must sum to 100, got {sum(out.values())!r} from {out}.",
            fix="Make the arms' percents add up to 100.",
        )
    return out


@dataclass(frozen=True, kw_only=True)
class Router:
    """Maps keys to arms: salted-hash buckets, contiguous ranges per arm, cohort overrides.

    Parameters
    ----------
    salt:
        Experiment salt; keep it fixed for the life of one rollout (stickiness holds per salt).
    arms:
        Arm names in bucket-layout order. Put the arm whose weight grows first (the canary):
        only the first arm is guaranteed sticky as its weight grows.
    overrides:
        ``{segment: arm}``: requests from these segments always go to that arm.

    Examples
    --------
    >>> r = Router(salt="s1")
    >>> arms = r.assign([1, 2, 3], {"candidate": 0, "stable": 100})
    >>> list(arms)
    ['stable', 'stable', 'stable']
    """

    salt: str
    arms: tuple[str, ...] = ("candidate", "stable")
    overrides: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.salt, str) or not self.salt:
            raise DefinitionError(
                f"Router: salt must be a non-empty string, got {self.salt!r}.",
                fix="Pass e.g. Router(salt='fraud-v2').",
            )
        arms = tuple(self.arms) if isinstance(self.arms, (list, tuple)) else None
        if not arms or len(arms) < 2 or len(set(arms)) != len(arms) \
                or not all(isinstance(a, str) and a for a in arms):
            raise DefinitionError(
                f"Router: arms must be two or more distinct non-empty names, got {self.arms!r}.",
                fix="Use e.g. arms=('candidate', 'stable').",
            )
        object.__setattr__(self, "arms", arms)
        if not isinstance(self.overrides, Mapping):
            raise DefinitionError(
                f"Router: overrides must be a mapping segment -> arm, got {self.overrides!r}.",
                fix="Use e.g. overrides={'high_value': 'candidate'}.",
            )
        for seg, arm in self.overrides.items():
            if arm not in arms:
                raise DefinitionError(
                    f"Router: override for segment {seg!r} names unknown arm {arm!r}.",
                    fix=f"Use one of {list(arms)}.",
                )
        object.__setattr__(self, "overrides", MappingProxyType(dict(self.overrides)))

    def buckets(self, keys: Any) -> np.ndarray:
        """Bucket (0..9,999) of each key under this router's salt."""
        return bucket_of(keys, salt=self.salt)

    def assign_codes(self, keys: Any = None, weights: Mapping[str, float] | None = None, *,
                     segments: Any = None, buckets: np.ndarray | None = None) -> np.ndarray:
        """Like :meth:`assign` but returns arm indices into ``self.arms`` (``int8``).

        Pass precomputed ``buckets`` instead of ``keys`` to route many batches cheaply.
        """
        w = validate_weights(weights if weights is not None else {}, self.arms)
        if buckets is None:
            if keys is None:
                raise ValidationError("Router.assign: pass keys or buckets.",
                                      fix="Pass the request keys.")
            buckets = self.buckets(keys)
        buckets = np.asarray(buckets)
        bounds = np.cumsum([round(w[a] * 100) for a in self.arms])
        codes = np.searchsorted(bounds, buckets, side="right").astype(np.int8)
        if self.overrides:
            if segments is None:
                raise ValidationError(
                    "Router.assign: this router has cohort overrides but no segments were given.",
                    fix="Pass segments=<array of segment names aligned with keys>.",
                )
            segs = np.asarray(segments, dtype=object)
            if segs.shape != buckets.shape:
                raise ValidationError(
                    f"Router.assign: segments has shape {segs.shape}, keys {buckets.shape}.",
                    fix="Pass one segment per key.",
                )
            for seg, arm in self.overrides.items():
                codes[segs == seg] = self.arms.index(arm)
        return codes

    def assign(self, keys: Any, weights: Mapping[str, float], *, segments: Any = None) -> np.ndarray:
        """Return the arm name of every key for the split ``weights`` (percent per arm).

        Parameters
        ----------
        keys:
            1-D sequence of integer or string ids.
        weights:
            ``{arm: percent}`` for every arm, summing to 100.
        segments:
            Segment of each key; required when the router has overrides.
        """
        codes = self.assign_codes(keys, weights, segments=segments)
        return np.asarray(self.arms, dtype=object)[codes]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"salt": self.salt, "arms": list(self.arms), "overrides": dict(self.overrides)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Router":
        """Inverse of :meth:`to_dict`."""
        return cls(salt=data["salt"], arms=tuple(data["arms"]), overrides=dict(data["overrides"]))
