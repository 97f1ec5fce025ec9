"""The README's configuration example is the file in examples/, and it validates."""

import re
from pathlib import Path

from rs_pipeline.core.config import load_config

REPO = Path(__file__).resolve().parents[1]


def test_readme_config_example_is_the_examples_file_and_validates():
    readme = (REPO / "README.md").read_text()
    block = re.search(r"```yaml\n(# my_config.yaml.*?)```", readme, re.S).group(1)
    example = REPO / "examples" / "my_config.yaml"
    assert block == example.read_text()
    cfg = load_config(example)
    assert [s.kind for s in cfg.sources] == ["imagefolder", "manifest", "synthrs", "sentinel2"]
    assert cfg.captions.retrieval.enabled and cfg.pairs.judge == "auto"


def test_readme_example_evaluates_on_the_users_own_sets():
    cfg = load_config(REPO / "examples" / "my_config.yaml")
    kinds = {b.name: b.kind for b in cfg.evaluation.benchmarks}
    assert kinds["my-scenes"] == "classification" and kinds["my-captions"] == "retrieval"
    assert cfg.evaluation.decontaminate and len(cfg.finetune.seeds) >= 3
