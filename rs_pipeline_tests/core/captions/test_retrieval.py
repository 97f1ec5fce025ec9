import csv

import pytest

from rs_pipeline.core.captions.base import SampleView
from rs_pipeline.core.captions.retrieval import RetrievalCaptioner, load_corpus
from rs_pipeline_tests.factories import noise_rgb


def write_rsicd_like(path):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["", "filename", "img_id", "split", "label", "sent_id", "sentence"])
        w.writerow([0, "1.jpg", 1, "train", "dense residential", "[1]",
                    "['many houses in rows', 'a dense block of homes']"])  # fmt: skip
        w.writerow([1, "2.jpg", 2, "train", "pond", "[2]", "['a small pond near trees']"])
        w.writerow([2, "3.jpg", 3, "train", "pond", "[3]", "['a small pond near trees']"])


def view(label, sid="s1"):
    return SampleView(sid, noise_rgb(8), label=label)


def test_corpus_labels_are_normalised_and_captions_deduplicated(tmp_path):
    write_rsicd_like(tmp_path / "c.csv")
    corpus = load_corpus([str(tmp_path / "c.csv")])
    assert corpus == {
        "denseresidential": ["many houses in rows", "a dense block of homes"],
        "pond": ["a small pond near trees"],
    }


def test_retrieval_matches_class_through_builtin_aliases(tmp_path):
    write_rsicd_like(tmp_path / "c.csv")
    cap = RetrievalCaptioner(load_corpus([str(tmp_path / "c.csv")]), "t", per_image=2)
    (pond,) = cap.caption([view("lake")])  # SynthRS `lake` <- corpus `pond`
    assert pond.text == "a small pond near trees" and pond.captioner_id == "retrieval:t/v1"
    homes = cap.caption([view("residential")])
    assert {c.text for c in homes} == {"many houses in rows", "a dense block of homes"}


def test_label_map_overrides_aliases_and_unmatched_classes_get_nothing(tmp_path):
    write_rsicd_like(tmp_path / "c.csv")
    corpus = load_corpus([str(tmp_path / "c.csv")])
    cap = RetrievalCaptioner(corpus, "t", label_map={"wetland": ("pond",)}, per_image=1)
    assert [c.text for c in cap.caption([view("wetland")])] == ["a small pond near trees"]
    assert cap.caption([view("glacier"), view(None)]) == []


def test_retrieval_is_deterministic_per_image_and_varies_across_images(tmp_path):
    write_rsicd_like(tmp_path / "c.csv")
    cap = RetrievalCaptioner(load_corpus([str(tmp_path / "c.csv")]), "t", per_image=1)
    picks = [cap.caption([view("residential", f"s{i}")])[0].text for i in range(20)]
    again = [cap.caption([view("residential", f"s{i}")])[0].text for i in range(20)]
    assert picks == again and len(set(picks)) == 2


def test_corpus_without_labels_fails_saying_what_it_needs(tmp_path):
    (tmp_path / "s.csv").write_text("filename,sentence\n1.tif,\"['a road']\"\n")
    with pytest.raises(ValueError, match="needs a `label` column"):
        load_corpus([str(tmp_path / "s.csv")])


@pytest.mark.needs_shared_data
def test_real_caption_corpus_covers_every_rsscn7_class(shared_data):
    files = sorted(str(p) for p in (shared_data / "rs_captions").glob("*.csv"))
    cap = RetrievalCaptioner(load_corpus(files), "rs_captions")
    classes = sorted(p.name for p in (shared_data / "rsscn7").iterdir() if p.is_dir())
    coverage = cap.coverage(classes)
    assert all(n >= 100 for n in coverage.values()), coverage
