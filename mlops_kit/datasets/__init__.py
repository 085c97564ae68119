"""Seeded card-payments world: scenarios, generator, feature pipelines and leakage helpers.

>>> from mlops_kit.datasets import Scenario, generate_world
>>> world = generate_world(Scenario.small(), seed=0)
>>> sorted(world.tables())
['labels', 'merchants', 'profiles', 'transactions', 'users']
"""

from ._checksums import compute_checksums, verify_checksums
from .generate import generate_world
from .leaky import current_profile_features, leaky_merchant_risk, naive_user_transaction_stats
from .modeling import MODEL_KINDS, ModelReport, feature_matrix, fit_evaluate, leakage_experiment, training_set
from .pipelines import (MERCHANT_RISK_FEATURES, PROFILE_FEATURES, REQUEST_FEATURES, SOURCE_SCHEMAS,
                        USER_STATS_FEATURES,
                        Split, deduplicate, entity_frame, merchant_risk, time_split, user_profile_features,
                        user_transaction_stats)
from .scenario import SCHEMA_CHANGE_FIELDS, SCHEMA_CHANGES, Scenario, Sizes
from .world import TABLES, World, load_world, require_columns

__all__ = [
    "Scenario", "Sizes", "SCHEMA_CHANGES", "SCHEMA_CHANGE_FIELDS",
    "World", "TABLES", "generate_world", "load_world", "require_columns",
    "user_transaction_stats", "merchant_risk", "user_profile_features", "entity_frame",
    "deduplicate", "time_split", "Split",
    "USER_STATS_FEATURES", "MERCHANT_RISK_FEATURES", "PROFILE_FEATURES", "REQUEST_FEATURES", "SOURCE_SCHEMAS",
    "leaky_merchant_risk", "current_profile_features", "naive_user_transaction_stats",
    "training_set", "feature_matrix", "fit_evaluate", "ModelReport", "leakage_experiment",
    "MODEL_KINDS", "compute_checksums", "verify_checksums",
]
