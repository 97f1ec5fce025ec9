"""Partition definitions shared by every stage, and the mapping between batch partitions."""

import dagster as dg

# One partition per ingest drop (e.g. a date); added by the nightly sensor, the CLI or the UI.
batch_partitions = dg.DynamicPartitionsDefinition(name="batch")

# A batch asset reads only its own batch upstream (explicit: the default would be inferred).
SAME_BATCH = dg.IdentityPartitionMapping()

# One partition per scorer version (`clip-head-3f9a1c`); a new scorer is a new key to backfill.
scorer_partitions = dg.DynamicPartitionsDefinition(name="scorer_version")

# pair_scores: every scorer version over every batch.
scores_partitions = dg.MultiPartitionsDefinition(
    {"scorer_version": scorer_partitions, "batch": batch_partitions}
)

# One partition per curated selection (`clip-head-3f9a1c@30`, `all@100`); curated_subsets adds them.
selection_partitions = dg.DynamicPartitionsDefinition(name="selection")
