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


def test_curation_preset_injects_noise_judges_a_fifth_and_compares_every_scorer_over_5_seeds():
    cfg = load_config("curation")
    assert cfg.captions.noise.rate == 0.5 and cfg.pairs.judged_fraction == 0.2
    assert {s.backend for s in cfg.scoring.scorers} == {
        "clip_head",
        "clipscore",
        "random",
        "oracle",
    }
    assert cfg.scoring.current == "clip-head" and cfg.pairs.judge == "oracle"
    assert cfg.finetune.lock_text and cfg.finetune.clip_model == "rs-resnet-minilm-64"
    assert cfg.selection.ratios == (30.0,) and len(cfg.finetune.seeds) >= 5
    assert cfg.finetune.include_all  # all@100 is always trained beside the selections


def test_curation_example_is_the_preset_plus_the_users_three_paths():
    cfg = load_config(REPO / "examples" / "curation.yaml")
    assert [s.kind for s in cfg.sources] == ["imagefolder"]
    assert cfg.captions.retrieval.enabled and cfg.captions.retrieval.corpus
    assert [b.kind for b in cfg.evaluation.benchmarks] == ["classification"]
    assert cfg.captions.noise.rate == 0.5  # from the preset, not restated


# A backticked path of ours in the README: a repository file or folder, or one under the package.
_FILE_REF = re.compile(r"`((?:[\w.-]+/)*[\w.-]+\.(?:py|yaml|yml|md|json|toml|sh)|(?:[\w.-]+/)+)`")


def test_readme_names_only_files_that_are_in_the_repository():
    refs = set(_FILE_REF.findall((REPO / "README.md").read_text()))
    bases = (REPO, REPO / "rs_pipeline", REPO / "rs_pipeline" / "core")
    modules = {p.name for p in (REPO / "rs_pipeline").rglob("*.py")}  # `sensors.py` alone

    def exists(ref: str) -> bool:
        if "/" not in ref and not ref.endswith(".py"):
            return True  # an artifact's file name (`config.json`), not a path of ours
        return any((b / ref).exists() for b in bases) or ref in modules

    missing = sorted(r for r in refs if not exists(r))
    assert refs and missing == []


def test_readme_layout_lists_every_core_package():
    readme = (REPO / "README.md").read_text()
    layout = readme[readme.index("## Layout") :]
    core = REPO / "rs_pipeline" / "core"
    packages = {p.name if p.is_dir() else p.stem for p in core.iterdir()} - {
        "__init__",
        "__pycache__",
    }
    unlisted = sorted(p for p in packages if f"`{p}`" not in layout and f"`{p}/`" not in layout)
    assert unlisted == []
