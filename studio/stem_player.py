"""A stem player for a tab's result players: solo / mute / level per stem, all stems played together
(sample-aligned, Web Audio), and a download of the remix as a 16-bit WAV rendered in the browser.

It reads the stems from the tab's own output players (their download links: the files the studio already
returned to this session), so it needs no server event and serves no file of its own.
"""
from __future__ import annotations

import html
import json

_CSS = """
.stem-player { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 12px; }
.stem-player .sp-row { display: flex; gap: 12px; align-items: center; margin: 4px 0; }
.stem-player .sp-name { min-width: 9em; font-weight: 600; }
.stem-player .sp-level { width: 14em; }
.stem-player button { border: 1px solid var(--border-color-primary); border-radius: 6px; padding: 2px 10px;
                      margin-right: 6px; background: var(--button-secondary-background-fill); }
.stem-player .sp-status { color: var(--body-text-color-subdued); margin-left: 8px; }
"""

_JS = r"""
(() => {
const root = element.querySelector('.stem-player');
if (!root) return;
const stems = JSON.parse(root.dataset.stems);
const rows = [...root.querySelectorAll('.sp-row')];
const status = root.querySelector('.sp-status');
let ctx = null, cache = {}, playing = [], gains = [];
const say = (t) => { status.textContent = t; root.dataset.state = t; };
function gainOf(i) {
  const solo = rows.some(r => r.querySelector('.sp-solo').checked);
  const r = rows[i];
  if (r.querySelector('.sp-mute').checked) return 0;
  if (solo && !r.querySelector('.sp-solo').checked) return 0;
  return parseFloat(r.querySelector('.sp-level').value);
}
function refresh() {
  rows.forEach((r, i) => {
    const g = parseFloat(r.querySelector('.sp-level').value);
    r.querySelector('.sp-db').textContent = g > 0 ? (20 * Math.log10(g)).toFixed(1) + ' dB' : '-inf dB';
    if (gains[i]) gains[i].gain.value = gainOf(i);
  });
}
function rateOf(bytes) {  // the sample rate in a WAV or FLAC header (0: unknown)
  const v = new DataView(bytes), tag = (o) => String.fromCharCode(...new Uint8Array(bytes, o, 4));
  if (bytes.byteLength >= 12 && tag(0) === 'RIFF') {
    for (let o = 12; o + 16 <= bytes.byteLength;) {
      const size = v.getUint32(o + 4, true);
      if (tag(o) === 'fmt ') return v.getUint32(o + 12, true);
      o += 8 + size + (size & 1);
    }
  }
  if (bytes.byteLength >= 21 && tag(0) === 'fLaC') {
    const b = new Uint8Array(bytes, 18, 3);
    return (b[0] << 12) | (b[1] << 4) | (b[2] >> 4);
  }
  return 0;
}
async function buffers(c) {
  const out = [];
  for (const s of stems) {
    const a = document.querySelector('#' + s.from + ' a[download]');
    if (!a || !a.href) throw new Error('run the tab first: no ' + s.name.toLowerCase() + ' yet');
    if (!cache[a.href]) {
      const data = await (await fetch(a.href)).arrayBuffer();
      // decoded at the file's own rate (a context's decodeAudioData resamples to the context's rate)
      const dec = new OfflineAudioContext(1, 1, rateOf(data) || 44100);
      cache[a.href] = await dec.decodeAudioData(data);
    }
    out.push(cache[a.href]);
  }
  return out;
}
function graph(c, bufs) {
  const g = bufs.map((b, i) => { const n = c.createGain(); n.gain.value = gainOf(i); n.connect(c.destination); return n; });
  const src = bufs.map((b, i) => { const s = c.createBufferSource(); s.buffer = b; s.connect(g[i]); return s; });
  return [src, g];
}
function stop() { playing.forEach(s => { try { s.stop(); } catch (e) {} }); playing = []; gains = []; }
root.addEventListener('input', refresh);
root.addEventListener('change', refresh);
root.querySelector('.sp-stop').addEventListener('click', () => { stop(); say('stopped'); });
root.querySelector('.sp-play').addEventListener('click', async () => {
  try {
    ctx = ctx || new AudioContext();
    await ctx.resume();
    stop();
    say('loading the stems...');
    const bufs = await buffers(ctx);
    const [src, g] = graph(ctx, bufs);
    const t = ctx.currentTime + 0.1;
    src.forEach(s => s.start(t));  // one start time: the stems stay aligned
    playing = src; gains = g;
    say('playing ' + bufs.length + ' stems together');
  } catch (e) { say(String(e.message || e)); }
});
function wav(buf) {
  const ch = buf.numberOfChannels, n = buf.length, rate = buf.sampleRate;
  const out = new DataView(new ArrayBuffer(44 + n * ch * 2));
  const w = (o, s) => [...s].forEach((c, i) => out.setUint8(o + i, c.charCodeAt(0)));
  w(0, 'RIFF'); out.setUint32(4, 36 + n * ch * 2, true); w(8, 'WAVEfmt '); out.setUint32(16, 16, true);
  out.setUint16(20, 1, true); out.setUint16(22, ch, true); out.setUint32(24, rate, true);
  out.setUint32(28, rate * ch * 2, true); out.setUint16(32, ch * 2, true); out.setUint16(34, 16, true);
  w(36, 'data'); out.setUint32(40, n * ch * 2, true);
  const data = [...Array(ch).keys()].map(c => buf.getChannelData(c));
  let peak = 0;
  data.forEach(d => { for (let i = 0; i < n; i++) peak = Math.max(peak, Math.abs(d[i])); });
  const scale = peak > 0.999 ? 0.999 / peak : 1;  // never clip: scale the remix down instead
  let o = 44;
  for (let i = 0; i < n; i++) for (let c = 0; c < ch; c++, o += 2)
    out.setInt16(o, Math.round(Math.max(-1, Math.min(1, data[c][i] * scale)) * 32767), true);
  return new Blob([out], {type: 'audio/wav'});
}
root.querySelector('.sp-download').addEventListener('click', async () => {
  try {
    ctx = ctx || new AudioContext();
    say('rendering the remix...');
    const bufs = await buffers(ctx);
    const len = Math.max(...bufs.map(b => b.length));
    const chans = Math.max(...bufs.map(b => b.numberOfChannels));
    const off = new OfflineAudioContext(chans, len, bufs[0].sampleRate);
    const [src] = graph(off, bufs);
    src.forEach(s => s.start(0));
    const blob = wav(await off.startRendering());
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob); a.download = 'remix.wav';
    document.body.appendChild(a); a.click(); a.remove();
    say('remix downloaded (' + (len / bufs[0].sampleRate).toFixed(1) + ' s)');
  } catch (e) { say(String(e.message || e)); }
});
refresh();
})();
"""


def markup(stems: list[tuple[str, str]]) -> str:
    """The player's HTML for ``stems = [(label, elem_id of the tab's output gr.Audio), ...]``."""
    rows = "".join(
        f'<div class="sp-row" data-i="{i}"><span class="sp-name">{html.escape(label)}</span>'
        f'<label><input type="checkbox" class="sp-solo"> solo</label>'
        f'<label><input type="checkbox" class="sp-mute"> mute</label>'
        f'<input type="range" class="sp-level" min="0" max="2" step="0.01" value="1" aria-label="{html.escape(label)} level">'
        f'<span class="sp-db">0.0 dB</span></div>'
        for i, (label, _elem) in enumerate(stems))
    data = html.escape(json.dumps([{"name": label, "from": elem} for label, elem in stems]), quote=True)
    return (f'<div class="stem-player" data-stems="{data}"><div><b>Stem player</b>: solo, mute and level per stem, '
            f'played together; the remix downloads as a WAV</div>{rows}'
            f'<div><button class="sp-play">Play together</button><button class="sp-stop">Stop</button>'
            f'<button class="sp-download">Download the remix (WAV)</button><span class="sp-status"></span></div></div>')


def stem_player(stems: list[tuple[str, str]], elem_id: str):
    """A ``gr.HTML`` stem player over the tab's output players ``stems`` (label, elem_id)."""
    import gradio as gr

    return gr.HTML(markup(stems), css_template=_CSS, js_on_load=_JS, elem_id=elem_id)
