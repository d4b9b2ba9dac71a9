"""The page's stylesheet and script, served by the process itself (the CSP allows no other origin, no inline
code): system fonts only, no images, nothing fetched from elsewhere."""

from __future__ import annotations

STYLE = """
:root { --bg: #10161d; --panel: #1b242e; --text: #eef2f5; --dim: #9fb0bf; --ok: #1f9d55; --run: #2b7bd9;
  --warn: #d99a00; --bad: #d64545; --idle: #44505c; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text);
  font: 18px/1.35 system-ui, "Noto Sans CJK SC", "Noto Sans", "DejaVu Sans", sans-serif; }
nav { display: flex; gap: 4px; align-items: center; background: #0b1015; padding: 6px 12px; }
nav a, nav button { color: var(--text); text-decoration: none; padding: 8px 14px; border-radius: 6px;
  background: var(--panel); border: 0; font: inherit; cursor: pointer; }
nav form { margin-left: auto; }
main { padding: 12px 16px; }
footer { color: var(--dim); font-size: 14px; padding: 8px 16px 16px; }
h1 { font-size: 26px; margin: 8px 0 12px; }
h2 { font-size: 20px; color: var(--dim); margin: 18px 0 8px; text-transform: uppercase; letter-spacing: .06em; }
.health { border-radius: 10px; padding: 12px 16px; display: grid; grid-template-columns: 1fr auto;
  gap: 2px 16px; }
.health .station { font-weight: 700; font-size: 22px; }
.health .verdict { font-size: 30px; font-weight: 800; text-align: right; grid-row: span 2; align-self: center; }
.health .why, .health .clock { color: #e8eef3; }
.health-ok { background: var(--ok); }
.health-degraded { background: var(--warn); color: #111; }
.health-degraded .why, .health-degraded .clock { color: #111; }
.health-fault { background: var(--bad); }
.health-stopped { background: var(--idle); }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 12px; }
.tile { background: var(--panel); border-radius: 10px; padding: 14px 16px; border-left: 10px solid var(--idle); }
.tile .id { font-size: 34px; font-weight: 800; letter-spacing: .02em; }
.tile .grade { color: var(--dim); }
.tile .state { font-size: 20px; font-weight: 700; margin: 6px 0; }
.tone-answering, .tone-idle, .tone-finished { border-left-color: var(--ok); }
.tone-fuelling, .tone-lifted { border-left-color: var(--run); }
.tone-fuelling .state { color: #7fb6ff; }
.tone-not_answering { border-left-color: var(--bad); }
.tone-not_answering .state { color: #ff8a8a; }
.tone-alarm { border-left-color: var(--warn); }
.tone-alarm .state { color: #ffc94d; }
.tile .stop { background: var(--bad); color: #fff; font-weight: 700; padding: 4px 8px; border-radius: 4px; }
.sale { display: flex; flex-wrap: wrap; gap: 4px 14px; align-items: baseline; }
.sale .label { color: var(--dim); width: 100%; font-size: 14px; text-transform: uppercase; }
.sale .volume, .level .volume { font-size: 28px; font-weight: 700; font-variant-numeric: tabular-nums; }
.sale .amount { font-size: 20px; }
.sale .when, .none { color: var(--dim); }
.tank { border-left-color: var(--run); }
.level meter { width: 100%; height: 18px; display: block; margin: 6px 0; }
.level .water { color: var(--dim); }
.alarms, .lines { list-style: none; padding: 0; margin: 0; display: grid; gap: 8px; }
.alarm, .problem { background: var(--panel); border-left: 10px solid var(--warn); border-radius: 8px;
  padding: 10px 14px; }
.alarm .advice { color: #ffe2a0; margin-top: 4px; }
.links { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: 12px; }
.link { background: var(--panel); border-radius: 10px; padding: 12px 16px; border-left: 10px solid var(--idle); }
.link .id { font-weight: 700; }
.link .state { font-size: 22px; font-weight: 700; }
.link .where, .link .detail { color: var(--dim); }
.link-online { border-left-color: var(--ok); }
.link-connecting { border-left-color: var(--warn); }
.link-offline, .link-stopped { border-left-color: var(--bad); }
.lines li { background: var(--panel); border-radius: 8px; padding: 8px 14px; }
.lines .line { font-weight: 700; margin-right: 8px; }
.device { display: inline-block; padding: 2px 10px; border-radius: 12px; margin: 2px; background: var(--idle); }
.device-online { background: var(--ok); }
.device-offline { background: var(--bad); }
pre { background: var(--panel); padding: 14px; border-radius: 8px; overflow-x: auto; font-size: 15px;
  white-space: pre-wrap; }
.note { color: var(--dim); }
form.login { max-width: 360px; margin: 12vh auto; display: grid; gap: 10px; }
input, button { font: inherit; padding: 12px; border-radius: 8px; border: 1px solid #34414e; }
input { background: #0b1015; color: var(--text); }
button { background: var(--run); color: white; border: 0; cursor: pointer; }
.refused { color: #ff8a8a; }
"""

SCRIPT = """
"use strict";
(function () {
  const live = document.getElementById("live");
  if (!live) { return; }
  const everyMs = 1000 * Number(live.dataset.refreshS || 3);
  async function refresh() {
    try {
      const answer = await fetch("/live", { credentials: "same-origin", cache: "no-store" });
      if (answer.status === 401) { window.location.assign("/login"); return; }
      if (answer.ok) { live.innerHTML = await answer.text(); }
    } catch (error) {
      live.classList.add("stale");
    }
    window.setTimeout(refresh, everyMs);
  }
  window.setTimeout(refresh, everyMs);
})();
"""

ICON = (
    """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="#1f9d55"/></svg>"""
)

ASSETS: dict[str, tuple[str, bytes]] = {
    "/icon.svg": ("image/svg+xml", ICON.encode()),
    "/style.css": ("text/css; charset=utf-8", STYLE.encode()),
    "/app.js": ("text/javascript; charset=utf-8", SCRIPT.encode()),
}
"""Path -> (content type, bytes): the only files the page serves."""
