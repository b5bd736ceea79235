"""Fallback single-source clip bank for the query model (used because /work/corpus was not rendered
in time). Sources: espeak-ng voices, fluidsynth GM programs (FluidR3_GM + TimGM6mb), freedesktop
sound-theme files, generated noises. Writes 16 kHz mono wavs + manifest.jsonl {path, class, source}."""
import json, os, random, struct, subprocess, sys, tempfile
import numpy as np, soundfile as sf
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from engines.audio import io as aio

OUT = os.environ.get("FALLBACK_CLIPS_OUT", "/work/runs/fallback_clips"); SR = 16000
rng = random.Random(0)
rows = []

def vlq(n):
    b = [n & 0x7F]; n >>= 7
    while n: b.append((n & 0x7F) | 0x80); n >>= 7
    return bytes(reversed(b))

def midi(notes, program, drums=False, tpq=480, bpm=100):
    ch = 9 if drums else 0
    ev = [(0, bytes([0xFF, 0x51, 3]) + (60000000 // bpm).to_bytes(3, "big"))]
    if not drums: ev.append((0, bytes([0xC0 | ch, program])))
    timed = []
    for (start, dur, pitch, vel) in notes:
        timed.append((int(start * tpq), bytes([0x90 | ch, pitch, vel])))
        timed.append((int((start + dur) * tpq), bytes([0x80 | ch, pitch, 0])))
    timed.sort(key=lambda x: x[0])
    data = b""; t = 0
    for tt, e in ev + timed:
        data += vlq(max(0, tt - t)) + e; t = max(t, tt)
    data += vlq(tpq) + bytes([0xFF, 0x2F, 0])
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq) + b"MTrk" + struct.pack(">I", len(data)) + data

def save(a, cls, src):
    a = np.asarray(a, np.float32)
    if a.size < SR // 2 or np.abs(a).max() < 1e-3: return
    a = a / np.abs(a).max() * 0.9
    name = f"{which}_{cls}_{len(rows):05d}.wav"
    sf.write(os.path.join(OUT, name), a, SR, subtype="PCM_16")
    rows.append({"path": name, "class": cls, "source": src})

def trim(a):
    nz = np.flatnonzero(np.abs(a) > 1e-3)
    return a[nz[0]:nz[-1] + 1] if nz.size else a

def fluid(notes, program, sf2, drums=False, bpm=100):
    with tempfile.TemporaryDirectory() as d:
        open(f"{d}/m.mid", "wb").write(midi(notes, program, drums, bpm=bpm))
        subprocess.run(["fluidsynth", "-ni", "-q", "-F", f"{d}/o.wav", "-r", str(SR), sf2, f"{d}/m.mid"],
                       capture_output=True, timeout=60)
        a, r = sf.read(f"{d}/o.wav", dtype="float32", always_2d=True)
    return trim(a.mean(1))

SF = ["/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2"]
FAM = {"piano": ([0, 1, 2, 4, 5, 6, 7], (48, 84)), "strings": ([40, 41, 42, 44, 45, 48, 49], (48, 84)),
       "winds": ([68, 69, 70, 71, 72, 73, 74, 75, 64, 65, 66], (55, 84)), "brass": ([56, 57, 58, 59, 60, 61, 62], (45, 75)),
       "guitar": ([24, 25, 26, 27, 28, 29], (40, 76)), "bass": ([32, 33, 34, 35, 36, 37, 38], (28, 52)),
       "organ": ([16, 17, 18, 19, 20, 21], (48, 80)), "bells": ([8, 9, 10, 11, 12, 13, 14, 112], (60, 96)),
       "birds": ([123], (60, 96))}

def melody(lo, hi, beats=8):
    t, notes, p = 0.0, [], rng.randint(lo, hi)
    while t < beats:
        d = rng.choice([0.25, 0.5, 0.5, 1, 1, 1.5, 2])
        p = min(hi, max(lo, p + rng.choice([-4, -2, -1, 0, 1, 2, 3, 5])))
        if rng.random() < 0.85: notes.append((t, d * 0.95, p, rng.randint(60, 110)))
        if rng.random() < 0.2 and notes: notes.append((t, d * 0.95, min(127, p + rng.choice([3, 4, 7])), 70))
        t += d
    return notes

which = sys.argv[1] if len(sys.argv) > 1 else "all"
if which in ("all", "music"):
    for cls, (progs, (lo, hi)) in FAM.items():
        for prog in progs:
            for sfi, sf2 in enumerate(SF):
                for k in range(3 if cls != "birds" else 12):
                    save(fluid(melody(lo, hi, 10), prog, sf2, bpm=rng.randint(70, 150)), cls, f"gm{prog}_{sfi}")
    for sfi, sf2 in enumerate(SF):
        for k in range(14):
            kit = [36, 38, 42, 46, 49, 51, 45, 48, 39, 44]
            notes = []
            for b in range(16):
                for p_ in rng.sample(kit, rng.randint(1, 3)):
                    notes.append((b * 0.5, 0.4, p_, rng.randint(70, 120)))
            save(fluid(notes, 0, sf2, drums=True, bpm=rng.randint(80, 160)), "drums", f"kit_{sfi}_{k % 4}")
if which in ("all", "voice"):
    voices = ["en", "en-us", "en+m1", "en+m3", "en+f2", "en+f4", "en-gb-x-rp", "de", "de+m2", "it", "it+f3", "fr", "es",
              "en+m7", "en+f1", "nl", "sv", "en-us+m2", "en+klatt", "pl"]
    words = ("the quick grey fox near old river stones walks slowly while morning light falls across quiet fields "
             "children sing and rain taps softly on the window every evening people gather under tall trees").split()
    for v in voices:
        for k in range(6):
            txt = " ".join(rng.choice(words) for _ in range(rng.randint(8, 14)))
            with tempfile.TemporaryDirectory() as d:
                subprocess.run(["espeak-ng", "-v", v, "-p", str(rng.randint(30, 70)), "-s", str(rng.randint(130, 190)),
                                "-w", f"{d}/s.wav", txt], capture_output=True, timeout=30)
                a, r = aio.load(f"{d}/s.wav", sr=SR, mono=True)
            save(trim(a[0]), "speech", f"voice_{v}")
        for k in range(4):  # crude singing: sustained vowels at chosen pitches
            parts = []
            for _ in range(rng.randint(5, 9)):
                syl = rng.choice(["laaa", "maaa", "ooo", "aaah", "neee", "doo"])
                with tempfile.TemporaryDirectory() as d:
                    subprocess.run(["espeak-ng", "-v", v, "-p", str(rng.randint(20, 90)), "-s", "80", "-w", f"{d}/s.wav",
                                    syl], capture_output=True, timeout=30)
                    a, r = aio.load(f"{d}/s.wav", sr=SR, mono=True)
                parts.append(trim(a[0]))
            save(np.concatenate(parts), "singing", f"sing_{v}")
if which in ("all", "fx"):
    fd = "/usr/share/sounds/freedesktop/stereo/"
    for f in sorted(os.listdir(fd)):
        a, r = aio.load(fd + f, sr=SR, mono=True)
        a = trim(a[0])
        cls = "alarms" if any(k in f for k in ("alarm", "phone", "error", "warning", "attention", "busy", "suspend")) else \
              "bells" if any(k in f for k in ("bell", "complete", "login", "logout", "message", "information", "question", "connectivity")) else None
        if cls is None: continue
        for k in range(4):
            g = 10 ** (rng.uniform(-3, 0) / 20)
            rep = np.tile(a, int(np.ceil(3 * SR / a.size)) if a.size < 3 * SR else 1)
            save(rep * g, cls, f"fd_{f}")
    t = np.arange(3 * SR) / SR
    for k in range(20):  # beeps / sirens
        f0 = rng.uniform(500, 3000)
        if k % 2: s = np.sin(2 * np.pi * np.cumsum(f0 + 300 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t)) / SR)
        else: s = np.sin(2 * np.pi * f0 * t) * (np.sin(2 * np.pi * rng.uniform(2, 6) * t) > 0)
        save(s, "alarms", f"synth_alarm_{k % 5}")
    for k in range(30):  # noises: white/pink/brown + band noises
        n = np.random.default_rng(k).standard_normal(4 * SR)
        X = np.fft.rfft(n); f = np.fft.rfftfreq(n.size, 1 / SR) + 1
        X = X / f ** (k % 3 * 0.5) * (1 + 3 * np.exp(-0.5 * ((f - rng.uniform(200, 4000)) / 500) ** 2) * (k % 2))
        save(np.fft.irfft(X, n.size) * (0.7 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * np.arange(n.size) / SR)), "noise", f"noise_{k % 6}")
    for sfi, sf2 in enumerate(SF):
        for prog in (122, 126, 127, 125):
            for k in range(2):
                save(fluid([(0, 8, 60, 100), (0, 8, 48, 90)], prog, sf2), "noise", f"gm{prog}_{sfi}")
with open(os.path.join(OUT, f"manifest_{which}.jsonl"), "w") as f:
    for r in rows: f.write(json.dumps(r) + "\n")
print(which, len(rows))
