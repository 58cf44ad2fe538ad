"""Product relations: substitute / complement / neutral pairs from co-holding,
co-adoption and product attributes, as a table, P x P matrices and per-customer graph features.

    python -m ml.relations --holdings PATH [--format csv|parquet] --out PATH
"""
from ml.relations.compute import (
    LABELS,
    RELATIONS_VERSION,
    RelationParams,
    attribute_similarity,
    compute_relations,
)
from ml.relations.graph import RelationGraph, read_table, write_table
from ml.relations.holdings import holdings_from_events, load_holdings

__all__ = [
    "LABELS", "RELATIONS_VERSION", "RelationGraph", "RelationParams", "attribute_similarity",
    "compute_relations", "holdings_from_events", "load_holdings", "read_table", "write_table",
]
