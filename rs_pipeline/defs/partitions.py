"""Partition definitions shared by every stage."""

import dagster as dg

# One partition per ingest drop (e.g. a date); added by the nightly sensor, the CLI or the UI.
batch_partitions = dg.DynamicPartitionsDefinition(name="batch")
