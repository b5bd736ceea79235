"""Query separation engine: each stage alone, the API invariants, bad input, the CLI, the AST path."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from engines.checkpoint import load_model
from engines.separation import detection as det
from engines.separation import reference as refmod
from engines.separation.api import QueryTooLongError, SeparationConfig, get_models, separate, write_outputs
from engines.separation.embedders import BuiltinEmbedder, Embedder, load_embedder
from engines.separation.mask import optimise_mask, total_variation
from engines.separation.model import QueryNet
from engines.testing import QUERY_CLASSES, tiny_separation

SR = 16000
CLASSES = QUERY_CLASSES


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return str(tiny_separation(tmp_path_factory.mktemp("m") / "tiny.safetensors"))


@pytest.fixture(scope="module")
def models(ckpt):
    return get_models("builtin", checkpoint=ckpt)


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    d = tmp_path_factory.mktemp("a")
    rng = np.random.default_rng(0)
    t = np.arange(4 * SR) / SR
    tgt = np.zeros_like(t)
    tgt[SR:3 * SR] = 0.3 * np.sin(2 * np.pi * 440 * t[SR:3 * SR])
    bg = 0.05 * rng.standard_normal(t.size)
    mix = (tgt + bg).astype(np.float32)
    sf.write(d / "mix.wav", mix, SR)
    sf.write(d / "gt.wav", tgt.astype(np.float32), SR)
    sf.write(d / "q.wav", (0.3 * np.sin(2 * np.pi * 440 * t[:SR])).astype(np.float32), SR)
    sf.write(d / "neg.wav", (0.05 * rng.standard_normal(SR)).astype(np.float32), SR)
    st = np.stack([mix, 0.5 * mix], 1)
    sf.write(d / "stereo44.wav", np.repeat(st, 1, 0), SR)  # rewritten below at 44.1 kHz
    import soxr
    sf.write(d / "stereo44.wav", soxr.resample(st, SR, 44100).astype(np.float32), 44100)
    sf.write(d / "silent.wav", np.zeros(SR, np.float32), SR)
    sf.write(d / "long_q.wav", np.tile(0.3 * np.sin(2 * np.pi * 440 * t[:SR]), 4)[:int(3.5 * SR)].astype(np.float32), SR)
    (d / "bad.wav").write_bytes(b"RIFF not really a wave file")
    return d


# ------------------------------------------------------------------ stages
def test_frame_windows_cover_the_signal():
    w, starts = det.frame_windows(torch.zeros(int(2.3 * SR)), 1.0, 0.5)
    assert list(w.shape) == [4, SR]
    assert np.allclose(starts, [0, 0.5, 1.0, 1.5])
    w, starts = det.frame_windows(torch.zeros(SR // 2), 1.0, 0.5)
    assert list(w.shape) == [1, SR]


def test_segments_merge_pad_and_min_duration():
    starts = np.arange(10) * 0.5
    active = np.array([0, 1, 1, 0, 0, 0, 0, 1, 0, 0], bool)
    segs = det.segments_from_active(active, starts, 1.0, 5.5, min_dur_ms=500, merge_gap_ms=200, padding_ms=50)
    assert segs == [(0.45, 2.05), (3.45, 4.55)]
    segs = det.segments_from_active(active, starts, 1.0, 5.5, min_dur_ms=1200, merge_gap_ms=200, padding_ms=50)
    assert segs == [(0.45, 2.05)]
    # a gap within merge_gap joins runs
    segs = det.segments_from_active(np.array([1, 0, 1], bool), np.array([0, 1.1, 1.2]), 1.0, 3, min_dur_ms=0,
                                    merge_gap_ms=200, padding_ms=0)
    assert segs == [(0.0, 2.2)]


def test_time_mask_is_one_inside_and_zero_far_outside():
    m = det.time_mask([{"start": 1.0, "end": 2.0}], 200, 160, sharpening=1.2)
    t = np.arange(200) * 160 / SR
    assert np.all(m[(t > 1.0) & (t < 2.0)] == 1)
    assert np.all(m[(t < 0.9) | (t > 2.1)] == 0)
    assert m.min() >= 0 and m.max() <= 1


class FakeEmbedder(Embedder):
    """Embeds a window by its energy in two bands: [low, high] (unit norm)."""

    name = "fake"
    class_names = ["low", "high"]

    def embed(self, windows):
        X = torch.fft.rfft(windows, dim=-1).abs()
        e = torch.stack([X[:, 100:1000].sum(-1), X[:, 3000:6000].sum(-1)], 1) + 1e-6
        e = torch.nn.functional.normalize(e, dim=1)
        return e, e.pow(2)


def test_detect_finds_the_query_band():
    t = np.arange(6 * SR) / SR
    x = 0.01 * np.sin(2 * np.pi * 4000 * t)
    x[2 * SR:4 * SR] += np.sin(2 * np.pi * 300 * t[2 * SR:4 * SR])
    emb = FakeEmbedder()
    q_emb, _ = emb.embed(torch.from_numpy(np.sin(2 * np.pi * 300 * t[:SR]).astype(np.float32))[None])
    d = det.detect(emb, torch.from_numpy(x.astype(np.float32)), q_emb[0], 0, cls_threshold=0.5,
                   cosine_threshold=0.9, segment_padding_ms=0)
    assert len(d.segments) == 1
    s = d.segments[0]
    assert 1.4 <= s["start"] <= 2.0 and 4.0 <= s["end"] <= 4.6
    # percentile gate: with 92 only the top windows pass
    d2 = det.detect(emb, torch.from_numpy(x.astype(np.float32)), q_emb[0], 0, cls_percentile=92,
                    use_cosine_gate=False, min_dur_ms=0)
    assert d2.active.sum() == 3 and d2.class_threshold > 0.5  # the three windows fully inside


def test_stitching_reference_and_initial_mask():
    mix_mel = torch.rand(16, 50) + 0.1
    q_mel = torch.rand(16, 7) + 0.1
    tm = np.zeros(50)
    tm[10:20] = 1
    ref = refmod.stitching_reference(q_mel, mix_mel, tm)
    assert ref.shape == mix_mel.shape
    assert torch.all(ref[:, :10] == 0) and torch.all(ref[:, 20:] == 0)
    assert torch.all(ref <= mix_mel + 1e-6)
    fb = torch.rand(16, 33)
    init = refmod.initial_mask(ref, mix_mel, fb, torch.rand(33), gamma_profile=0.25, mask_floor=0.08, activity=tm)
    assert init.shape == (33, 50)
    assert float(init.min()) >= 0 and float(init.max()) <= 1
    assert torch.all(init[:, 10:20] >= 0.08 - 1e-6)


def test_optimise_mask_reduces_the_loss_and_respects_the_floor():
    torch.manual_seed(0)
    mag = torch.rand(33, 40) + 0.01
    fb = torch.rand(8, 33)
    true = (torch.rand(33, 40) > 0.5).float()
    ref = fb @ (true * mag)
    floor = torch.full((1, 40), 0.05)
    r = optimise_mask(torch.full((33, 40), 0.5), mag, ref, fb, steps=30, lr=0.2, floor=floor)
    assert r.losses[-1] < r.losses[0] * 0.7
    assert float(r.mask.min()) >= 0.05 and float(r.mask.max()) <= 1
    assert total_variation(torch.ones(4, 4)) == 0


def test_fitted_mask_chunks_long_mixtures(models):
    _, net = models
    x = torch.randn(int(3 * SR)) * 0.1
    q = torch.randn(SR) * 0.1
    full = refmod.fitted_mask(net, x, [q])
    chunked = refmod.fitted_mask(net, x, [q], chunk_sec=1.0, context_sec=0.5)
    assert full.shape == chunked.shape == (257, x.numel() // 256 + 1)
    assert float(chunked.min()) >= 0 and float(chunked.max()) <= 1
    assert torch.mean((full - chunked).abs()) < 0.2


def test_checkpoint_round_trip_keeps_class_names(ckpt):
    net = load_model(ckpt, expected=QueryNet)
    assert net.class_names == CLASSES
    e, p = BuiltinEmbedder(net).embed(torch.randn(3, SR) * 0.1)
    assert list(e.shape) == [3, 16] and list(p.shape) == [3, len(CLASSES)]
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)


# ------------------------------------------------------------------ API
@pytest.mark.parametrize("reference", ["fitted", "stitch"])
def test_separate_mixture_consistency_and_event(audio, models, reference):
    r = separate(str(audio / "mix.wav"), str(audio / "q.wav"), gt=str(audio / "gt.wav"), models=models,
                 reference=reference, cosine_threshold=-1.0, cls_percentile=0, not_found_db=-200)
    mix, _ = sf.read(audio / "mix.wav", dtype="float32")
    assert r.target.shape == r.residual.shape == (1, mix.size)
    assert np.array_equal(r.residual, r.mixture - r.target)
    assert r.found and r.segments
    ev = json.loads(json.dumps(r.event(), default=float))
    for key in ("segments", "query_class", "embedder", "params", "timings_s", "metrics", "windows"):
        assert key in ev
    assert ev["params"]["opt_steps"] == 18 and ev["params"]["cls_percentile"] == 0
    for key in ("si_sdr", "sdr", "spectral_convergence", "cross_correlation", "energy_ratio", "quality"):
        assert key in r.metrics
    assert r.query_class in CLASSES
    # the fitted reference uses the mask net's mask as is unless --refine_net_mask; stitch optimises
    assert len(r.losses) == (0 if reference == "fitted" else 18)


def test_refine_net_mask_runs_the_optimisation(audio, models):
    kw = dict(models=models, cosine_threshold=-1.0, cls_percentile=0, not_found_db=-200, mask_floor=0.0)
    plain = separate(str(audio / "mix.wav"), str(audio / "q.wav"), **kw)
    refined = separate(str(audio / "mix.wav"), str(audio / "q.wav"), refine_net_mask=True, opt_steps=5, **kw)
    assert plain.losses == [] and len(refined.losses) == 5
    assert not np.allclose(plain.mask, refined.mask)
    assert refined.event()["params"]["refine_net_mask"] is True


def test_separate_keeps_rate_and_channels(audio, models):
    r = separate(str(audio / "stereo44.wav"), str(audio / "q.wav"), models=models, not_found_db=-200)
    info = sf.info(str(audio / "stereo44.wav"))
    assert r.sr == 44100 and r.target.shape == (2, info.frames)
    assert np.array_equal(r.residual, r.mixture - r.target)


def test_not_found_gives_silent_target(audio, models):
    r = separate(str(audio / "mix.wav"), str(audio / "q.wav"), models=models, not_found_db=1000,
                 cosine_threshold=2.0)  # no window can pass the cosine gate
    assert not r.found and not np.any(r.target)
    assert np.array_equal(r.residual, r.mixture)
    assert r.event()["message"].startswith("not found")


def test_options_several_queries_negative_semantic_and_long_query(audio, models):
    r = separate(str(audio / "mix.wav"), [str(audio / "q.wav"), str(audio / "q.wav")], models=models,
                 negative=str(audio / "neg.wav"), use_embedding_masking=True, use_spectrogram_features=True,
                 soft_masking=False, not_found_db=-200, max_query_sec=2.0)
    assert set(np.unique(r.mask)) <= {0.0, 1.0}
    assert any("AST" in w for w in r.warnings)  # 2-D masking needs AST: reported, not silent
    r2 = separate(str(audio / "mix.wav"), str(audio / "long_q.wav"), models=models, max_query_sec=2.0,
                  not_found_db=-200)
    assert r2.query_trimmed and r2.query.size == 2 * SR


@pytest.mark.parametrize("mix,query,err", [
    ("mix.wav", "silent.wav", "silent"),
    ("silent.wav", "q.wav", "silent"),
    ("q.wav", "mix.wav", "longer than the mixture"),
    ("mix.wav", "bad.wav", "cannot be decoded"),
    ("mix.wav", "missing.wav", "not found"),
])
def test_bad_input_raises_clear_errors(audio, models, mix, query, err):
    with pytest.raises(ValueError, match=err):
        separate(str(audio / mix), str(audio / query), models=models)


def test_bad_settings_raise(audio, models):
    with pytest.raises(ValueError, match="mask_floor"):
        separate(str(audio / "mix.wav"), str(audio / "q.wav"), models=models, mask_floor=2)
    with pytest.raises(TypeError):
        SeparationConfig(nonsense=1)


def test_write_outputs_all_or_nothing(audio, models, tmp_path, monkeypatch):
    r = separate(str(audio / "mix.wav"), str(audio / "q.wav"), models=models, not_found_db=-200)
    files = write_outputs(r, tmp_path / "out", save_trimmed_query=True)
    cls = r.query_class
    assert {"target.wav", "residual.wav", "event.json", f"{cls}.wav", f"{cls}_comparison.png",
            f"{cls}_timeline.png"} <= set(files)
    t, _ = sf.read(tmp_path / "out" / "target.wav", dtype="float32")
    res, _ = sf.read(tmp_path / "out" / "residual.wav", dtype="float32")
    mix, _ = sf.read(audio / "mix.wav", dtype="float32")
    assert np.abs(t + res - mix).max() < 1e-6
    from engines.separation import plots

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(plots, "timeline_png", boom)
    with pytest.raises(RuntimeError):
        write_outputs(r, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out2")]


# ------------------------------------------------------------------ the engine contract
def test_engine_run_and_result_save_write_the_clis_files(audio, ckpt, tmp_path):
    from engines.base import Engine as BaseEngine
    from engines.base import Result as BaseResult
    from engines.separation import Config, Engine, Result

    assert issubclass(Engine, BaseEngine) and issubclass(Result, BaseResult) and Engine.Config is Config
    eng = Engine.load(ckpt, device="cpu", embedder="builtin")
    assert str(eng.device) == "cpu" and next(eng.net.parameters()).device.type == "cpu"
    inputs = {"mix": str(audio / "mix.wav"), "query": [str(audio / "q.wav")], "gt": str(audio / "gt.wav")}
    r = eng.run(inputs, "inclusive", not_found_db=-200)
    assert isinstance(r, Result) and set(r.audio) == {"target", "residual"}
    assert r.params["cls_percentile"] == 85 and r.params["device"] == "cpu" and r.timings["total"] > 0
    assert r.sample_rate == 16000 and r.target.shape == r.residual.shape == (1, 4 * SR)
    with pytest.raises(ValueError, match="Missing input: query"):
        eng.run({"mix": str(audio / "mix.wav")})
    with pytest.raises(ValueError, match="Unknown preset"):
        eng.run(inputs, "nonsense")
    files = r.save(tmp_path / "out", inputs=[str(audio / "mix.wav")], save_trimmed_query=True)
    cls = r.query_class
    assert set(files) == {"target.wav", "residual.wav", "event.json", f"{cls}.wav", f"{cls}_comparison.png",
                          f"{cls}_timeline.png"}
    ev = json.loads((tmp_path / "out" / "event.json").read_text())
    for key in ("sample_rate", "duration", "stems", "timings", "params",  # the common keys
                "found", "segments", "query_class", "timings_s", "metrics", "windows", "outputs"):
        assert key in ev
    assert sorted(ev["outputs"]) == sorted(files) and "write" in ev["timings_s"]
    assert sf.info(str(tmp_path / "out" / "target.wav")).subtype == "FLOAT"
    q, qsr = sf.read(tmp_path / "out" / f"{cls}.wav")
    assert qsr == SR and q.size == r.query.size
    # the former function is the same writer
    files2 = write_outputs(r, tmp_path / "out2", save_visualizations=False, save_renamed_query=False)
    assert set(files2) == {"target.wav", "residual.wav", "event.json"}


def test_separate_wrapper_equals_engine_run(audio, models):
    from engines.separation import Engine

    kw = dict(not_found_db=-200, cosine_threshold=-1.0)
    a = separate(str(audio / "mix.wav"), str(audio / "q.wav"), models=models, **kw)
    b = Engine(*models).run({"mix": str(audio / "mix.wav"), "query": str(audio / "q.wav")}, **kw)
    assert np.array_equal(a.target, b.target) and a.segments == b.segments


def test_presets_are_valid_and_differ(audio):
    from engines.separation import Config

    assert Config() == SeparationConfig()
    for name in Config.PRESETS:
        cfg = Config.preset(name)
        assert cfg != Config() and isinstance(cfg.cls_percentile, float)
    assert Config.preset("selective", mask_floor=0.2).mask_floor == 0.2


# ------------------------------------------------------------------ CLI
def test_cli_separate_writes_everything_and_rejects_bad_input(audio, ckpt, tmp_path, capsys):
    import launch

    out = tmp_path / "cli"
    rc = launch.main(["separate", "--mix_wav", str(audio / "mix.wav"), "--query_wav", str(audio / "q.wav"),
                      "--out_dir", str(out), "--gt_wav", str(audio / "gt.wav"), "--checkpoint", ckpt,
                      "--embedder", "builtin", "--use_cosine_gate", "False", "--cls_threshold", "None",
                      "--save_trimmed_query", "--opt_steps", "5"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "SI-SDR" in text and "quality" in text
    ev = json.loads((out / "event.json").read_text())
    assert ev["params"]["use_cosine_gate"] is False and ev["params"]["opt_steps"] == 5
    assert ev["embedder"].startswith("builtin")
    assert (out / "target.wav").is_file() and (out / "residual.wav").is_file()
    bad = tmp_path / "bad_out"
    rc = launch.main(["separate", "--mix_wav", str(audio / "mix.wav"), "--query_wav", str(audio / "silent.wav"),
                      "--out_dir", str(bad), "--checkpoint", ckpt, "--embedder", "builtin"])
    assert rc == 2 and not bad.exists()
    assert "silent" in capsys.readouterr().err
    # a query that does not occur: its own exit code, a silent target and residual = mixture
    nf = tmp_path / "nf"
    rc = launch.main(["separate", "--mix_wav", str(audio / "mix.wav"), "--query_wav", str(audio / "q.wav"),
                      "--out_dir", str(nf), "--checkpoint", ckpt, "--embedder", "builtin", "--not_found_db", "1000",
                      "--cosine_threshold", "2.0", "--save_visualizations", "False"])
    assert rc == 3 and "not found" in capsys.readouterr().out
    t, _ = sf.read(str(nf / "target.wav"))
    r, _ = sf.read(str(nf / "residual.wav"))
    m, _ = sf.read(str(audio / "mix.wav"))
    assert not np.any(t) and np.allclose(r, m, atol=1e-4)


def test_cli_preset_and_device(audio, ckpt, tmp_path, capsys):
    import launch

    out = tmp_path / "p"
    rc = launch.main(["separate", "--mix_wav", str(audio / "mix.wav"), "--query_wav", str(audio / "q.wav"),
                      "--out_dir", str(out), "--checkpoint", ckpt, "--embedder", "builtin", "--preset", "selective",
                      "--mask_floor", "0.3", "--not_found_db", "-200", "--device", "cpu", "--save_visualizations",
                      "False"])
    assert rc == 0 and "device: cpu" in capsys.readouterr().out
    params = json.loads((out / "event.json").read_text())["params"]
    assert params["cls_percentile"] == 96 and params["mask_floor"] == 0.3  # preset under the explicit flag
    with pytest.raises(SystemExit) as exc:  # argparse refuses the flag before any work
        launch.main(["separate", "--mix_wav", str(audio / "mix.wav"), "--query_wav", str(audio / "q.wav"),
                     "--out_dir", str(tmp_path / "bad"), "--device", "tpu"])
    assert exc.value.code == 2 and "unknown device" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


# ------------------------------------------------------------------ AST path (tiny random model, offline)
def test_ast_embedder_from_local_folder(tmp_path, audio, ckpt):
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    cfg = ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, num_labels=5,
                    max_length=100, id2label={i: f"label{i}" for i in range(5)}, label2id={f"label{i}": i for i in range(5)})
    torch.manual_seed(0)
    ASTForAudioClassification(cfg).save_pretrained(tmp_path / "ast")
    ASTFeatureExtractor(max_length=100).save_pretrained(tmp_path / "ast")
    emb = load_embedder("auto", ast_model=str(tmp_path / "ast"), checkpoint=ckpt)
    assert emb.name.startswith("ast:") and emb.class_names[0] == "label0"
    e, p = emb.embed(torch.randn(3, SR) * 0.1)
    assert list(e.shape) == [3, 32] and list(p.shape) == [3, 5]
    sim = emb.patch_similarity(torch.randn(SR) * 0.1, e[0], (257, 63))
    assert list(sim.shape) == [257, 63]
    # auto with a hub id whose weights are not on disk: built-in, without touching the network
    os.environ["HF_HUB_OFFLINE"] = "1"
    assert load_embedder("auto", ast_model="nobody/not-cached-ast", checkpoint=ckpt).name.startswith("builtin")
    with pytest.raises(ValueError, match="local files"):
        load_embedder("ast", ast_model="nobody/not-cached-ast")
    # the whole pipeline with AST detection + 2-D masking
    net = load_model(ckpt, expected=QueryNet)
    r = separate(str(audio / "mix.wav"), str(audio / "q.wav"), models=(emb, net), use_spectrogram_features=True,
                 not_found_db=-200)
    assert r.embedder.startswith("ast:") and not r.warnings
    assert np.array_equal(r.residual, r.mixture - r.target)


def test_ast_weights_found_in_the_hf_cache_layout(tmp_path, monkeypatch):
    from engines.separation.embedders import ast_available_locally

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert not ast_available_locally("org/model")
    snap = tmp_path / "models--org--model" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    assert ast_available_locally("org/model")


def test_cached_mel_filterbank_equals_the_shared_one(tmp_path, monkeypatch):
    from engines.audio.spectral import mel_filterbank
    from engines.separation.features import mel_fb

    monkeypatch.setenv("AUDIO_STUDIO_CACHE", str(tmp_path))
    mel_fb.cache_clear()
    first = mel_fb(16000, 256, 20)
    assert (tmp_path / "melfb_slaney_16000_256_20.npy").is_file()
    mel_fb.cache_clear()
    assert torch.equal(mel_fb(16000, 256, 20), first) and torch.equal(first, mel_filterbank(16000, 256, 20))
    mel_fb.cache_clear()
