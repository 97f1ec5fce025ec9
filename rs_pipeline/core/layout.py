"""Every stage's folders under the artifact root, and the one listing of which batches exist.

One home for the layout: a stage writes where these functions say, and every reader (another
stage, the Dagster layer, the CLI, benchmarks) finds it through them, so no package imports a
stage of another floor just to learn a folder name.

    rs_images/batch=<b>/{samples,quarantine,images}.parquet
    caption_candidates/batch=<b>/captions.parquet
    preference_pairs/batch=<b>/pairs.parquet
    score_model/version=<v>/
    pair_scores/version=<v>/batch=<b>/scores.parquet
    curated_subsets/version=<v>/<selection>.parquet
    clip_checkpoints/selection=<s>/seed=<n>/
    vlm_checkpoints/selection=<s>/{sft/, seed=<n>/}
    vlm_rl_checkpoints/selection=<s>/seed=<n>/
    bon_eval/selection=<s>/bon.parquet
    evaluation_report/
"""

from __future__ import annotations

import re

from rs_pipeline.core.artifacts import ArtifactStore
from rs_pipeline.core.names import check_batch_key

IMAGES_ASSET = "rs_images"
CAPTIONS_ASSET = "caption_candidates"
PAIRS_ASSET = "preference_pairs"
SCORE_MODEL_ASSET = "score_model"
SCORES_ASSET = "pair_scores"
SUBSETS_ASSET = "curated_subsets"
CHECKPOINTS_ASSET = "clip_checkpoints"
VLM_CHECKPOINTS_ASSET = "vlm_checkpoints"
VLM_RL_ASSET = "vlm_rl_checkpoints"
BON_ASSET = "bon_eval"
REPORT_ASSET = "evaluation_report"

# Ingest publishes a batch's tables with this one last (`ingest.stage`): no marker, no batch.
SAMPLES_FILE = "samples.parquet"
IMAGES_FILE = "images.parquet"
CAPTIONS_FILE = "captions.parquet"
PAIRS_FILE = "pairs.parquet"
SCORES_FILE = "scores.parquet"

_BATCH_FOLDER = re.compile(r"/batch=([^/]+)/[^/]+$")


def images_dir(batch: str) -> str:
    """Folder of one ingested batch: samples, quarantine and the normalised images."""
    return f"{IMAGES_ASSET}/batch={check_batch_key(batch)}"


class BatchNotIngested(FileNotFoundError):
    """A batch's `rs_images` folder lacks its samples marker: never or only partly published."""


def require_ingested(store: ArtifactStore, batch: str) -> str:
    """The folder of `batch` in `rs_images`, once it is fully published; else a clear error.

    Ingest moves `samples.parquet` in last, so `images.parquet` without it is a partition an
    interrupted run left half-published (or one being re-published right now): never read it.
    """
    folder = images_dir(batch)
    if not store.exists(folder, SAMPLES_FILE):
        raise BatchNotIngested(
            f"batch {batch} is not fully ingested ({store.url(folder, SAMPLES_FILE)} is "
            f"missing): materialize {IMAGES_ASSET}[{batch}]"
        )
    return folder


def captions_dir(batch: str) -> str:
    """Folder of one batch's caption candidates."""
    return f"{CAPTIONS_ASSET}/batch={check_batch_key(batch)}"


def pairs_dir(batch: str) -> str:
    """Folder of one batch's preference pairs."""
    return f"{PAIRS_ASSET}/batch={check_batch_key(batch)}"


def model_dir(version: str) -> str:
    """Folder of one scorer version's checkpoint."""
    return f"{SCORE_MODEL_ASSET}/version={version}"


def scores_root(version: str) -> str:
    """Folder of every batch's pair scores under one scorer version."""
    return f"{SCORES_ASSET}/version={version}"


def scores_dir(version: str, batch: str) -> str:
    """Folder of one (scorer_version, batch) partition of pair scores."""
    return f"{scores_root(version)}/batch={check_batch_key(batch)}"


def subsets_dir(version: str) -> str:
    """Folder of one scorer version's selections."""
    return f"{SUBSETS_ASSET}/version={version}"


def checkpoint_dir(selection: str, seed: int | None = None) -> str:
    """Folder of one selection's checkpoints (or of one seed's)."""
    base = f"{CHECKPOINTS_ASSET}/selection={selection}"
    return base if seed is None else f"{base}/seed={seed}"


def vlm_checkpoint_dir(selection: str, seed: int | None = None) -> str:
    """Folder of one selection's VLM checkpoints (or of one seed's)."""
    base = f"{VLM_CHECKPOINTS_ASSET}/selection={selection}"
    return base if seed is None else f"{base}/seed={seed}"


def vlm_rl_dir(selection: str, seed: int | None = None) -> str:
    """Folder of one selection's GRPO checkpoints (or of one seed's)."""
    base = f"{VLM_RL_ASSET}/selection={selection}"
    return base if seed is None else f"{base}/seed={seed}"


def sft_dir(selection: str) -> str:
    """Folder of one selection's VLM training set (ShareGPT records + images)."""
    return f"{vlm_checkpoint_dir(selection)}/sft"


def bon_dir(selection: str) -> str:
    """Folder of one selection's best-of-N results."""
    return f"{BON_ASSET}/selection={selection}"


def batches_under(store: ArtifactStore, folder: str, filename: str) -> list[str]:
    """Batches `b` with `<folder>/batch=<b>/<filename>` under the artifact root, sorted.

    The one answer to "which batches exist" for every batch-partitioned table.
    """
    if not store.exists(folder):
        return []
    found = store.fs.glob(store.path(folder, "batch=*", filename))
    return sorted(m.group(1) for f in found if (m := _BATCH_FOLDER.search(f)))


def captioned_batches(store: ArtifactStore) -> list[str]:
    """Batches with caption candidates."""
    return batches_under(store, CAPTIONS_ASSET, CAPTIONS_FILE)


def paired_batches(store: ArtifactStore) -> list[str]:
    """Batches with preference pairs."""
    return batches_under(store, PAIRS_ASSET, PAIRS_FILE)


def scored_batches(store: ArtifactStore, version: str) -> list[str]:
    """Batches with pair scores under `version`."""
    return batches_under(store, scores_root(version), SCORES_FILE)
