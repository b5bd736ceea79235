"""benchmarks/common.py: the two bench sets, baselines (whole set and restricted), the scorer
wrapper, the side-by-side table and the per-set registry scores."""
import argparse
import json

import numpy as np
import pytest
import soundfile as sf

from benchmarks import common


def _baselines(tmp_path, name="query"):
    per = {"case_00": {"kind": "speech", "mixture": {"si_sdr": -4.0, "sdr": -4.0},
                       "irm_mag": {"si_sdr": 10.0, "si_sdri": 14.0, "sdr": 10.0}},
           "case_01": {"kind": "effect", "mixture": {"si_sdr": -6.0, "sdr": -6.0},
                       "irm_mag": {"si_sdr": 20.0, "si_sdri": 26.0, "sdr": 20.0}}}
    d = tmp_path / name
    d.mkdir(parents=True)
    (d / "baselines.json").write_text(json.dumps({
        "n": 2, "per_case": per, "mean": {"mixture": {"si_sdr": -5.0, "sdr": -5.0},
                                          "irm_mag": {"si_sdr": 15.0, "si_sdri": 20.0, "sdr": 15.0}},
        "mean_by_kind": {"speech": {"irm_mag": {"si_sdri": 14.0}, "mixture": {"si_sdr": -4.0}, "n": 1}}}))
    return d


def test_sets_are_the_two_bench_folders():
    assert list(common.SETS) == ["rendered", "real"]
    assert common.SETS["rendered"] == common.BENCH / "data" and common.SETS["real"] == common.BENCH / "data_real"


def test_load_baselines_whole_set_and_restricted_to_cases(tmp_path):
    d = _baselines(tmp_path)
    whole = common.load_baselines(d, "query")
    assert whole["n"] == 2 and whole["mean"]["irm_mag"]["si_sdri"] == 20.0
    assert common.load_baselines(tmp_path, "query")["mean"] == whole["mean"]  # the set root works too
    one = common.load_baselines(d, "query", ["case_01"])
    assert one["n"] == 1 and one["mean"]["irm_mag"]["si_sdri"] == 26.0 and one["mean"]["mixture"]["si_sdr"] == -6.0
    assert one["mean_by_kind"] == {"effect": {"mixture": {"si_sdr": -6.0, "sdr": -6.0},
                                              "irm_mag": {"si_sdr": 20.0, "si_sdri": 26.0, "sdr": 20.0}, "n": 1}}
    assert common.load_baselines(tmp_path / "nothing", "query") == {}


def test_side_by_side_has_a_column_per_set_baselines_and_share_of_ideal(tmp_path):
    b = common.load_baselines(_baselines(tmp_path), "query")
    text = common.side_by_side("query", {"rendered": {"si_sdri": 10.0, "si_sdri [speech]": 7.0},
                                         "real": {"si_sdri": 5.0}}, {"rendered": b, "real": b}, echo=False)
    lines = text.splitlines()
    assert "| figure | rendered | real |" in lines
    assert "| si_sdri | 10 | 5 |" in lines
    assert "| *si_sdri / IRM-mag si_sdri* | 0.5 | 0.25 |" in lines
    assert "| *si_sdri [speech] / IRM-mag si_sdri* | 0.5 | — |" in lines  # per-kind ideal, missing figure
    assert "| *do nothing (mixture): si_sdr* | -5 | -5 |" in lines
    assert "| *ideal mask IRM-mag: si_sdri* | 20 | 20 |" in lines
    assert not any("IRM-pow" in x for x in lines)  # absent from this baselines.json: no row
    assert "| x | 0.006314 | 1363 |" in common.side_by_side("query", {"a": {"x": 0.0063141}, "b": {"x": 1362.8}}, {},
                                                          echo=False).splitlines()


def test_side_by_side_timbre_share_of_the_gap():
    b = {"mean": {"do_nothing_piano": {"mrstft": 3.0}, "other_soundfont_violin": {"mrstft": 1.0}}}
    text = common.side_by_side("timbre", {"rendered": {"mrstft": 2.0}}, {"rendered": b}, echo=False)
    assert "| *mrstft: share of the gap do-nothing -> other-soundfont violin closed* | 0.5 |" in text
    assert "| *do nothing piano: mrstft* | 3 |" in text


def test_selected_sets_and_old_data_option(tmp_path):
    p = argparse.ArgumentParser()
    common.add_set_arguments(p)
    p.add_argument("--data", default=None)
    assert common.selected_sets(p.parse_args([]), "query") == {n: r / "query" for n, r in common.SETS.items()}
    assert common.selected_sets(p.parse_args(["--sets", "real"]), "vocals") == {"real": common.SETS["real"] / "vocals"}
    assert common.selected_sets(p.parse_args(["--data", str(common.SETS["real"] / "query")]), "query") == {
        "real": common.SETS["real"] / "query"}
    assert p.parse_args(["--limit", "2"]).limit == 2


def test_registry_set_scores_keeps_the_other_set_and_the_old_label():
    old = {"bench": "shared/bench/data/query (16 cases)", "si_sdri_mean_db": 9.0}
    s = common.registry_set_scores(old, "real", {"si_sdri_mean_db": 4.0})
    assert s["bench"] == {"rendered": {"set": "shared/bench/data/query (16 cases)"}, "real": {"si_sdri_mean_db": 4.0}}
    assert s["si_sdri_mean_db"] == 9.0 and old["bench"] == "shared/bench/data/query (16 cases)"
    s2 = common.registry_set_scores(s, "rendered", {"si_sdri_mean_db": 9.5})
    assert s2["bench"]["real"] == {"si_sdri_mean_db": 4.0} and s2["bench"]["rendered"] == {"si_sdri_mean_db": 9.5}


@pytest.mark.skipif(not (common.BENCH / "score.py").is_file(), reason="bench scorer not present")
def test_score_runs_the_bench_scorer(tmp_path):
    rng = np.random.default_rng(0)
    data, pred = tmp_path / "data", tmp_path / "pred"
    for i in range(2):
        c = data / f"case_0{i}"
        c.mkdir(parents=True)
        gt = 0.1 * rng.standard_normal(16000)
        bg = 0.1 * rng.standard_normal(16000)
        sf.write(c / "gt.wav", gt, 16000, subtype="FLOAT")
        sf.write(c / "mix.wav", gt + bg, 16000, subtype="FLOAT")
        (pred / c.name).mkdir(parents=True)
        sf.write(pred / c.name / "target.wav", gt, 16000, subtype="FLOAT")
    s = common.score("query", data, pred)
    assert s["n"] == 2 and s["n_missing"] == 0 and s["si_sdr"] > 100 and s["si_sdri"] > 100
    (pred / "case_01" / "target.wav").unlink()
    with pytest.raises(RuntimeError, match="score.py query failed"):
        common.score("query", data, pred)
    assert common.score("query", data, pred, allow_missing=True)["n_missing"] == 1


def test_device_and_peak_rss():
    assert common.device() in ("cpu", "cuda")
    assert common.peak_rss_mb() > 10
