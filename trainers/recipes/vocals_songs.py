"""Fallback songs for the vocals trainer (used because /work/corpus/songs was not rendered in time):
renders songs with the corpus renderer's own Songs kind (trainers/corpus/kinds/songs.py, in progress
by the corpus developer) into /work/runs/vocals_songs/songs/song_XXXXX/. Seed 7 (the bench is not used)."""
import json, os, sys, time, traceback
from pathlib import Path
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from trainers.corpus.deps import check_all
from trainers.corpus.kinds.base import Context
from trainers.corpus.kinds.songs import Songs

n = int(sys.argv[1]) if len(sys.argv) > 1 else 60
root = Path(os.environ.get("VOCALS_SONGS_OUT", "/work/runs/vocals_songs"))
found = check_all(None, need_espeak=True)
ctx = Context(root=root, soundfont=found["soundfont"], seed=7, stereo=False)
kind = Songs()
(root / "songs").mkdir(parents=True, exist_ok=True)
for i in range(n):
    plan = kind.plan(ctx.seed, i)
    t = time.time()
    try:
        if (root / "songs" / kind.rel_path(i, plan) / "meta.json").is_file():
            continue
        row = kind.render(ctx, i, plan)
        with open(root / "songs" / "manifest.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"song {i} {row['seconds']} s in {time.time() - t:.1f} s", flush=True)
    except Exception:
        traceback.print_exc()
