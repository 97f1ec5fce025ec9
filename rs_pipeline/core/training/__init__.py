"""The training library both trainers use: the contrastive loop, the warmup+cosine schedule,
resumable snapshots and the locked-text (LiT) cache. It knows nothing of selections or scorers."""
