"""The feedback log's exchange format: the Parquet export of served lists and answers.

``serving.export`` writes it from the feedback store every night, the warehouse reads it as a dbt
source, the stage-two re-ranker trains on it (``ml.recommendation.rerank_training``) and the
evaluation's simulated sessions are written in it, so a bank's real logs and the simulator's take
the same path. Timestamps are naive ``timestamp[us]`` in the bank's local time. ``arm`` names who
served a list: ``champion`` (the current model), ``challenger`` or ``control`` (the rule score);
null for lists logged before arms existed.
"""
from __future__ import annotations

import pyarrow as pa

_TS = pa.timestamp("us")
SCHEMAS = {
    "recommendations": pa.schema([
        ("recommendation_id", pa.string()), ("customer_id", pa.string()), ("manager_id", pa.string()),
        ("stage", pa.int32()), ("parent_recommendation_id", pa.string()), ("product_id", pa.string()),
        ("rank", pa.int32()), ("score", pa.float64()), ("match_score", pa.int32()), ("model_version", pa.string()),
        ("created_at", _TS), ("arm", pa.string())]),
    "feedback": pa.schema([
        ("feedback_id", pa.string()), ("recommendation_id", pa.string()), ("customer_id", pa.string()),
        ("product_id", pa.string()), ("manager_id", pa.string()), ("response", pa.string()),
        ("recorded_at", _TS), ("idempotency_key", pa.string())]),
}
EXPORT_COLUMNS = {table: tuple(schema.names) for table, schema in SCHEMAS.items()}
PART = "part-00000.parquet"  # the simulator writes one part per table; serving.export names its parts by watermark
