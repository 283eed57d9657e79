"""The tagger table: every row well formed, names and repos resolve to hub ids, thresholds per model."""

from __future__ import annotations

import pytest

from taggers.catalog import TAGGER_ROWS, TAGGERS, default_thresholds, tagger_hub_id, tagger_spec
from taggers.wd14 import DEFAULT_MODEL, MODELS


def test_rows_are_unique_and_well_formed():
    assert len({r.name for r in TAGGER_ROWS}) == len(TAGGER_ROWS)
    assert len({r.repo for r in TAGGER_ROWS}) == len(TAGGER_ROWS)
    for row in TAGGER_ROWS:
        assert row.repo.count("/") == 1 and row.repo.endswith(row.name)
        assert 0.1 < row.threshold < 0.6 and 0.1 < row.character_threshold < 1
        assert row.batch in ("dynamic", "fixed 1") and row.threshold_source


def test_large_v3_and_community_taggers_are_listed():
    for name in ("wd-eva02-large-tagger-v3", "wd-vit-large-tagger-v3", "wd-convnext-tagger-v3",
                 "idolsankaku-eva02-large-tagger-v1", "idolsankaku-swinv2-tagger-v1"):
        assert name in TAGGERS and name in MODELS
    assert DEFAULT_MODEL in TAGGERS


@pytest.mark.parametrize("given, hub", [
    ("wd-vit-tagger-v3", "SmilingWolf/wd-vit-tagger-v3"),
    ("idolsankaku-swinv2-tagger-v1", "deepghs/idolsankaku-swinv2-tagger-v1"),
    ("wd-some-future-tagger", "SmilingWolf/wd-some-future-tagger"),
    ("org/name@v1.0", "org/name@v1.0"),
])
def test_hub_ids(given, hub):
    assert tagger_hub_id(given) == hub


def test_thresholds_per_model():
    assert default_thresholds("wd-eva02-large-tagger-v3") == (0.5296, 0.85)
    assert default_thresholds("SmilingWolf/wd-vit-tagger-v3@v1.0")[0] == 0.2614   # by repo, any revision
    assert default_thresholds("/some/local/folder") == (0.35, 0.85)
    assert tagger_spec("nothing") is None


def test_tab_threshold_follows_the_model():
    from ui.tagging.auto import model_threshold

    assert model_threshold("wd-eva02-large-tagger-v3") == 0.53
    assert model_threshold("wd-vit-tagger-v3") == 0.26 and model_threshold("/my/folder") == 0.35
