"""The feature store's reads go through Governance.check_read; quality suites read its files."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from mlops_kit._time import FixedClock
from mlops_kit.errors import AccessDeniedError, QualityGateError
from mlops_kit.quality import NullRateCheck, QualitySuite, gate

from mlops_kit import features  # noqa: E402
UTC = timezone.utc


def test_restricted_view_through_the_store(workspace):
    store = features.FeatureStore(workspace, clock=FixedClock(datetime(2024, 1, 10, tzinfo=UTC)))
    user = features.Entity(name="user", join_keys=["user_id"])
    view = features.FeatureView(name="card_pii", entities=[user], schema=[features.Field(name="amt", dtype="float64")],
                                ttl=timedelta(days=7), owner="risk", description="raw amounts", sensitivity="restricted")
    store.apply([user, view])
    store.ingest("card_pii", pd.DataFrame({
        "user_id": [1, 2, 3], "amt": [1.0, None, 3.0],
        "event_timestamp": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True)}))
    entity_df = pd.DataFrame({"user_id": [1], "event_timestamp": pd.to_datetime(["2024-01-05"], utc=True)})
    with pytest.raises(AccessDeniedError):
        store.get_historical_features(entity_df, features=["card_pii:amt"])
    gov = store.governance
    gov.add_principal("alice", actor="sec", reason="investigations")
    gov.grant("card_pii", principal="alice", actor="sec", reason="SEC-1")
    out = store.get_historical_features(entity_df, features=["card_pii:amt"], principal="alice", purpose="training")
    assert out["amt"].tolist() == [1.0]
    log = gov.read_log("card_pii")
    assert log["outcome"].tolist() == ["denied", "allowed"] and log["principal"].tolist()[1] == "alice"
    assert gov.usage("card_pii")["offline_reads"] == 1
    gov.add_consumer("card_pii", "fraud_model", actor="alice")
    suite = QualitySuite(view="card_pii", checks=[NullRateCheck(
        id="amt_nulls", column="amt", max_rate=0.1, severity="block", owner="risk", remediation="re-ingest")])
    report = suite.run_offline(store, catalog=gov)
    assert report.results[0].observed == pytest.approx(1 / 3)
    with pytest.raises(QualityGateError, match="fraud_model"):
        gate(report)
