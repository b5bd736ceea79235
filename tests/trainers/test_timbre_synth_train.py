"""`train timbre-synth`: one real run as a subprocess (all four curriculum phases with the seed's terms,
export, resume), the held-out rule, and the trainer's loss on a batch."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tone(f0, seconds, sr, sustained, seed):
    t = np.arange(int(seconds * sr)) / sr
    env = np.minimum(1, t * 30) if sustained else np.exp(-4 * t)
    harm = [1, 0.6, 0.4, 0.3] if sustained else [1, 0.3, 0.1]
    y = sum(a * np.sin(2 * np.pi * f0 * (k + 1) * t) for k, a in enumerate(harm)) * env
    return (0.1 * y + 1e-3 * np.random.default_rng(seed).standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Paired one-note clips (ids p0..p9: p9 is held out) plus unpaired folders, 24 kHz."""
    root = tmp_path_factory.mktemp("timbre_synth_data")
    sr = 24000
    for i, f0 in enumerate([330.0, 440.0, 523.0, 392.0, 349.0, 294.0, 370.0, 415.0, 466.0, 494.0]):
        d = root / "pairs" / f"p{i}"
        d.mkdir(parents=True)
        sf.write(d / "piano.wav", _tone(f0, 0.8, sr, False, i), sr)
        sf.write(d / "violin.wav", _tone(f0, 0.8, sr, True, i), sr)
    (root / "piano").mkdir()
    (root / "violin").mkdir()
    sf.write(root / "piano" / "a.wav", _tone(392.0, 0.8, sr, False, 7), sr)
    sf.write(root / "violin" / "b.wav", _tone(294.0, 1.0, sr, True, 8), sr)
    return root


def test_held_out_takes_the_index_nine_pairs():
    from trainers.timbre_synth import held_out

    pairs = [(f"pair_{i:05d}", "p", "v") for i in range(25)]
    dev, train = held_out(pairs, 10)
    assert [p[0] for p in dev] == ["pair_00009", "pair_00019"] and len(train) == 23
    assert not set(dev) & set(train)


def test_train_runs_all_phases_exports_and_resumes(data, tmp_path):
    out = tmp_path / "run"
    export = tmp_path / "synth-test.safetensors"
    cmd = [sys.executable, os.path.join(ROOT, "launch.py"), "train", "timbre-synth", "--data", str(data),
           "--out_dir", str(out), "--max_steps", "4", "--batch_size", "2", "--val_pairs", "1", "--window", "24",
           "--d_model", "16", "--style_dim", "8", "--enc_layers", "1", "--dec_layers", "1", "--n_harmonics", "8",
           "--reverb_seconds", "0.05", "--no_mlflow", "--threads", "1", "--log_every", "1", "--export", str(export),
           "--note_features", "--export_epochs"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    epochs = sorted(out.glob("epoch*.safetensors"))
    assert len(epochs) == r.stdout.count("Epoch ") >= 1  # one export per finished epoch
    for k, name in enumerate(["reconstruction", "disentanglement", "contrastive", "adversarial"], 1):
        assert f"Curriculum phase {k}/4: {name}" in r.stdout
    events = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["event"] == "train"]
    assert "hsic" in steps[1] and "infonce" in steps[2] and "margin" in steps[2] and "adv_d" in steps[3]
    assert all("rec" in e for e in steps) and any("pair" in e for e in steps)
    assert json.loads((out / "split.json").read_text())["val"] == ["p9"]
    from engines.checkpoint import load_model
    from engines.timbre.synth_model import TimbreSynth

    m = load_model(export, expected=TimbreSynth)
    assert m.checkpoint_metadata["steps"] == 4 and float(m.proto_count.sum()) > 0 and m.note_features
    assert load_model(epochs[0], expected=TimbreSynth).checkpoint_metadata["epoch"] == 1
    assert {"pv_mrstft", "vp_mrstft", "pv_chroma_cos"} <= set(m.checkpoint_metadata["val"])
    hb = m.checkpoint_metadata["high_band"]  # fitted on the training split's targets (24 kHz clips)
    assert set(hb["gain_db"]) == {"piano", "violin"} and hb["info"]["fitted_on"]["violin"]["clips"] == 10  # 9 + 1 solo
    assert load_model(epochs[0], expected=TimbreSynth).checkpoint_metadata["high_band"] == hb
    r2 = subprocess.run(cmd[:cmd.index("--max_steps") + 1] + ["5"] + cmd[cmd.index("--max_steps") + 2:],
                        capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert r2.returncode == 0 and "Resumed from" in r2.stdout


def test_high_band_only_refits_the_curves_and_keeps_the_weights(data, tmp_path):
    from engines.checkpoint import load_model
    from engines.testing import tiny_timbre_synth

    init = tiny_timbre_synth(tmp_path / "init.safetensors", 0)
    out = tmp_path / "with-curves.safetensors"
    cmd = [sys.executable, os.path.join(ROOT, "launch.py"), "train", "timbre-synth", "--data", str(data),
           "--out_dir", str(tmp_path / "run"), "--init", str(init), "--high_band_only", "--export", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    a, b = load_model(init), load_model(out)
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    assert b.checkpoint_metadata["high_band"]["info"]["fitted_on"]["piano"]["clips"] == 10  # p9 is never fitted on
    no_init = [c for c in cmd if c not in ("--init", str(init))]
    r = subprocess.run(no_init, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert r.returncode != 0 and "--high_band_only needs --init" in r.stdout + r.stderr


def test_pitch_windows_never_mix_a_second_melody_in():
    from trainers.timbre import Clip, TimbreWindows
    from trainers.timbre_synth import PitchWindows

    sr = 22050
    pairs = [(Clip(_tone(f, 1.0, sr, False, i)), Clip(_tone(f, 1.0, sr, True, i))) for i, f in enumerate([330.0, 440.0])]
    assert PitchWindows.REMIX_SECOND_P == 0.0 < TimbreWindows.REMIX_SECOND_P
    ds = PitchWindows(pairs, [], [], window=40, remix_p=1.0, seed=3)
    for i in range(len(ds)):
        item = ds[i]
        assert item["remixed"] == 1.0 and item["piano_f0"].shape == (40,) and item["violin_loud"].shape == (40,)
        f0 = item["violin_f0"][5:30]
        want = 330.0 if ds.index[i][1] == 0 else 440.0
        assert torch.all((f0 > want * 0.97) & (f0 < want * 1.03))  # the window's own note only


def test_pitch_windows_track_whole_clips_and_carry_note_features_at_the_remix_gain():
    from engines.timbre import pitch
    from trainers.timbre import Clip
    from trainers.timbre_synth import PitchWindows

    sr = 22050
    clips = [(Clip(_tone(f, 2.0, sr, False, i)), Clip(_tone(f, 2.0, sr, True, i))) for i, f in enumerate([330.0, 440.0])]
    plain = PitchWindows(clips, [], [], window=40, remix_p=0.0)
    notes = PitchWindows(clips, [], [], window=40, remix_p=1.0, seed=2, note_features=True)
    for i in range(len(notes)):
        item, base = notes[i], plain[i]
        s, g = int(item["starts"][0]), float(item["gains"][0])
        f0, loud, _ = pitch.track(clips[notes.index[i][1]][0].wav.numpy(), clips[0][0].frames)
        want = pitch.note_features(f0, loud)[s:s + 40]
        n = int(item["frames"])
        got = item["piano_loud"]
        assert got.shape == (40, 3) and base["piano_loud"].shape == (40,)
        np.testing.assert_allclose(got[:n, :2].numpy(), want[:n, :2] + 20 * np.log10(g), atol=1e-3)
        np.testing.assert_allclose(got[:n, 2].numpy(), want[:n, 2], atol=1e-6)  # the age counts from the onset
        if s > 0:
            assert float(got[0, 2]) > 0  # a window starting inside the note knows it began earlier


def test_init_adds_note_features_to_a_synthesis_model_without_changing_its_output(tmp_path):
    import argparse

    from engines.testing import tiny_timbre_synth
    from engines.timbre import pitch
    from engines.timbre import features as F
    from trainers.timbre_synth import build_model

    from engines.checkpoint import load_model
    from engines.timbre.synth_model import TimbreSynth

    path = tiny_timbre_synth(tmp_path / "s.safetensors", 0)
    old = load_model(path, expected=TimbreSynth).eval()
    args = argparse.Namespace(init=str(path), note_features=True)
    new, what = build_model(args)
    new.eval()
    assert new.note_features and not old.note_features and "note features" in what
    y = _tone(330.0, 1.0, 22050, False, 0)
    raw = F.features(y)
    f0, loud, _ = pitch.track(y)
    a = old.transfer_controls(raw, torch.from_numpy(f0), old.dynamics(f0, loud), old.style_of("violin"))
    b = new.transfer_controls(raw, torch.from_numpy(f0), new.dynamics(f0, loud), new.style_of("violin"))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)  # zero weights on the new inputs: the same model


def test_an_input_only_piano_is_never_a_target():
    from torch.utils.data import default_collate

    from engines.testing import tiny_timbre_synth
    from trainers.timbre import Clip
    from trainers.timbre_synth import DEFAULT_WEIGHTS, PitchWindows, SynthTrainer

    sr = 22050
    clips = [(Clip(_tone(f, 1.0, sr, False, i)), Clip(_tone(f, 1.0, sr, True, i))) for i, f in enumerate([330.0, 440.0])]
    ds = PitchWindows(clips, [], [], window=40, remix_p=0.0, note_features=True, input_only={0})
    assert {int(ds.index[i][1]): float(ds[i]["piano_target"]) for i in range(len(ds))} == {0: 0.0, 1: 1.0}
    batch = default_collate([ds[i] for i in range(len(ds)) if ds.index[i][1] == 0][:2])
    model = tiny_timbre_synth(note_features=True)  # eval mode: no dropout, the same forward twice
    trainer = SynthTrainer(model, DEFAULT_WEIGHTS)
    proto, count = model.prototypes.clone(), model.proto_count.clone()
    with torch.no_grad():
        out = trainer(batch, phase=1)
    # the input-only piano updates no piano prototype (the violin's does move) ...
    assert torch.equal(model.prototypes[0], proto[0]) and int(model.proto_count[0]) == int(count[0])
    assert not torch.equal(model.prototypes[1], proto[1])
    # ... and its reconstruction and violin -> piano terms weigh nothing: the same batch with the piano as a
    # target scores other values, and moves the piano prototype
    with torch.no_grad():
        out_t = trainer(dict(batch, piano_target=torch.ones(len(batch["frames"]))), phase=1)
    assert torch.isfinite(out["loss"]) and float(out["pair"]) > 0
    assert float(out_t["rec"]) != pytest.approx(float(out["rec"])) and float(out_t["pair"]) != pytest.approx(float(out["pair"]))
    assert not torch.equal(model.prototypes[0], proto[0])


def test_train_with_an_input_only_folder(data, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, os.path.join(ROOT, "launch.py"), "train", "timbre-synth", "--data", str(data),
           "--data", str(data / "pairs"), "--input_only", str(data / "pairs"),
           "--out_dir", str(out), "--max_steps", "2", "--batch_size", "2", "--val_pairs", "1", "--window", "24",
           "--d_model", "16", "--style_dim", "8", "--enc_layers", "1", "--dec_layers", "1", "--n_harmonics", "8",
           "--reverb_seconds", "0.05", "--no_mlflow", "--threads", "1", "--note_features"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "of the training pairs have an input-only piano" in r.stdout
    bad = subprocess.run(cmd[:cmd.index("--input_only") + 1] + [str(tmp_path)] + cmd[cmd.index("--input_only") + 2:],
                         capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert bad.returncode != 0 and "--input_only names a folder" in (bad.stdout + bad.stderr)
