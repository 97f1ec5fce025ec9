"""CLIP fine-tuning on each selection (`clip_checkpoints`): the app built on the training library.

Like open_clip's split between `open_clip` and `open_clip_train`: the training library
(`core/training`: the contrastive loop, schedule, snapshots) knows nothing of selections; this
package trains one checkpoint per selection and seed, evaluates it, and records its lineage.
"""
