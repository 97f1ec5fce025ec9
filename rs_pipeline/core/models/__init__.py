"""Model architectures the pipeline builds locally (never downloaded)."""
