// gaitsearch web page: plain JS, no build step. Talks to the JSON API of the same origin.
"use strict";

// OpenPose-18 bones; the same pairs as BONES in model/skeleton.py (a test keeps them equal).
const BONES = [
  [0, 1], [1, 2], [2, 3], [3, 4], [1, 5], [5, 6], [6, 7], [1, 8], [8, 9], [9, 10],
  [1, 11], [11, 12], [12, 13], [0, 14], [14, 16], [0, 15], [15, 17],
];
// Right side warm, left side cool, spine and head white.
const RIGHT = new Set([2, 3, 4, 8, 9, 10, 14, 16]);
const LEFT = new Set([5, 6, 7, 11, 12, 13, 15, 17]);
const SHOW_ATTRS = ["gender", "age", "build", "pace", "footwear", "carrying", "impairment",
  "energy", "view"];

const form = document.getElementById("search-form");
const queryInput = document.getElementById("query");
const kSelect = document.getElementById("k");
const statusLine = document.getElementById("status");
const resultsBox = document.getElementById("results");
const understoodBox = document.getElementById("understood");
let animations = [];
let generation = 0;

function setStatus(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    throw new Error(`the server cannot be reached (${err.message})`);
  }
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : response.statusText;
    throw new Error(`${response.status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
  }
  return body;
}

async function runSearch(text) {
  const q = text.trim();
  if (!q) { setStatus("Type a description of a walk first.", true); return; }
  const k = kSelect.value;
  setStatus("Searching…");
  try {
    const data = await api(`/search?q=${encodeURIComponent(q)}&k=${k}`);
    if (showUnderstood(data.understood)) { clearResults(); setStatus(""); return; }
    render(data.results, `${data.results.length} walks for “${q}” in ${data.took_ms.toFixed(1)} ms` +
      ` (index ${data.index_version})`, `No walks match “${q}”.`);
  } catch (err) {
    clearResults();
    showUnderstood(null);
    setStatus(`Search failed: ${err.message}`, true);
  }
}

// Example queries for the "not understood" message (clicking one searches it).
const EXAMPLES = ["woman in heels walking briskly", "old man with a cane walking slowly",
  "child running, seen from the side"];

function chip(text, cls) {
  const span = document.createElement("span");
  span.className = `chip ${cls}`;
  span.textContent = text;
  return span;
}

// How the query was read: chips for the terms and the ignored words, or, for a query that
// names nothing searchable, the server's message with clickable example queries. Returns
// true when the query was not grounded (no results to show).
function showUnderstood(understood) {
  understoodBox.replaceChildren();
  understoodBox.className = "";
  if (!understood) return false;
  if (!understood.grounded) {
    understoodBox.className = "not-grounded";
    const msg = document.createElement("p");
    msg.className = "detail";
    msg.textContent = understood.detail || "This query names nothing this index can search by.";
    const tries = document.createElement("div");
    tries.className = "tries";
    tries.append("Try: ");
    for (const text of EXAMPLES) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "example";
      b.textContent = text;
      b.addEventListener("click", () => { queryInput.value = text; runSearch(text); });
      tries.appendChild(b);
    }
    understoodBox.append(msg, tries);
    return true;
  }
  const terms = understood.terms || [];
  const ignored = understood.ignored || [];
  if (terms.length) {
    const row = document.createElement("div");
    row.className = "row understood-terms";
    row.append(chip("understood:", "label"));
    for (const t of terms) {
      const measured = t.kind === "measured";
      const text = measured ? `${t.name} ${t.value}` : String(t.value);
      const c = chip(text.replace(/_/g, " "), measured ? "term measured" : "term");
      c.title = `${t.name} = ${t.value} (${measured ? "measured from the keypoints, " : ""}` +
        `confidence ${Math.round(t.confidence * 100)}%)`;
      row.appendChild(c);
    }
    understoodBox.appendChild(row);
  }
  if (ignored.length) {
    const row = document.createElement("div");
    row.className = "row understood-ignored";
    row.append(chip("ignored:", "label"), chip(ignored.join(" "), "ignored"));
    row.title = "words of the query that this index cannot search by";
    understoodBox.appendChild(row);
  }
  return false;
}

async function moreLikeThis(id) {
  showUnderstood(null);
  setStatus(`Finding walks like ${id}…`);
  try {
    const data = await api("/search/by-example", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ id, k: Number(kSelect.value) }),
    });
    render(data.results, `${data.results.length} walks like ${id} in ${data.took_ms.toFixed(1)} ms` +
      ` (index ${data.index_version})`, `No other walks are like ${id}.`);
  } catch (err) {
    setStatus(`“More like this” failed: ${err.message}`, true);
  }
}

function clearResults() {
  generation += 1;
  animations = [];
  resultsBox.replaceChildren();
}

function render(results, summary, emptyText) {
  clearResults();
  if (!results.length) { setStatus(emptyText, true); return; }
  setStatus(summary);
  const mine = generation;
  for (const hit of results) {
    resultsBox.appendChild(card(hit, mine));
  }
}

function card(hit, mine) {
  const box = document.createElement("article");
  box.className = "result";
  box.dataset.id = hit.id;
  const head = document.createElement("div");
  head.className = "head";
  const title = document.createElement("span");
  title.textContent = `#${hit.rank} ${hit.id}`;
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = hit.score.toFixed(3);
  score.title = "match score (higher fits better): attribute log-likelihood ratio, or cosine for a text-space checkpoint";
  head.append(title, score);

  const canvas = document.createElement("canvas");
  canvas.width = 200;
  canvas.height = 220;
  canvas.setAttribute("aria-label", `stick figure of ${hit.id}`);

  const desc = document.createElement("div");
  desc.className = "desc";
  desc.textContent = hit.metadata.description || "";
  const tags = document.createElement("div");
  tags.className = "tags";
  const attrs = hit.metadata.attributes || {};
  for (const key of SHOW_ATTRS) {
    if (attrs[key] === undefined) continue;
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = `${key}: ${attrs[key]}`;
    tags.appendChild(tag);
  }
  const more = document.createElement("button");
  more.type = "button";
  more.className = "more";
  more.textContent = "more like this";
  more.addEventListener("click", () => moreLikeThis(hit.id));
  box.append(head, canvas, desc, tags, more);

  api(`/sequences/${encodeURIComponent(hit.id)}`)
    .then((seq) => { if (mine === generation) animations.push(figure(canvas, seq)); })
    .catch((err) => { drawMessage(canvas, "no keypoints"); console.warn(hit.id, err); });
  return box;
}

function drawMessage(canvas, text) {
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#9fb0c2";
  ctx.font = "14px sans-serif";
  ctx.fillText(text, 12, 24);
}

// Scale by the tallest frame and centre each frame on its own body: a treadmill view, so a
// walk across the camera stays big and in the middle.
function figure(canvas, seq) {
  const frames = seq.keypoints;
  let tallest = 1;
  let yMid = 0;
  const centres = frames.map((frame) => {
    let xs = 0, n = 0, yMin = Infinity, yMax = -Infinity;
    for (const [x, y, c] of frame) {
      if (c <= 0) continue;
      xs += x; n += 1; yMin = Math.min(yMin, y); yMax = Math.max(yMax, y);
    }
    if (n) { tallest = Math.max(tallest, yMax - yMin); yMid += (yMin + yMax) / 2; }
    return n ? xs / n : null;
  });
  yMid /= Math.max(1, centres.filter((c) => c !== null).length);
  return { canvas, frames, centres, yMid, scale: (canvas.height * 0.8) / tallest,
    fps: seq.fps || 25, start: performance.now(), frame: -1 };
}

function draw(anim, now) {
  const { canvas, frames } = anim;
  // rAF's timestamp is the frame's start and may precede anim.start on a busy page: clamp,
  // or a negative index would throw and stop every animation.
  const elapsed = Math.max(0, now - anim.start);
  const index = Math.floor((elapsed / 1000) * anim.fps) % frames.length;
  if (index === anim.frame) return;
  anim.frame = index;
  canvas.dataset.frame = String(index);
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const frame = frames[index];
  const cx = anim.centres[index];
  if (cx === null) return;
  const px = (x) => canvas.width / 2 + (x - cx) * anim.scale;
  const py = (y) => canvas.height / 2 + (y - anim.yMid) * anim.scale;  // y grows downwards
  ctx.lineWidth = 3;
  ctx.lineCap = "round";
  for (const [a, b] of BONES) {
    const p = frame[a], q = frame[b];
    if (p[2] <= 0 || q[2] <= 0) continue;
    ctx.strokeStyle = RIGHT.has(b) ? "#ff8a3d" : LEFT.has(b) ? "#3db8ff" : "#e8eef5";
    ctx.beginPath();
    ctx.moveTo(px(p[0]), py(p[1]));
    ctx.lineTo(px(q[0]), py(q[1]));
    ctx.stroke();
  }
  ctx.fillStyle = "#ffffff";
  for (const [x, y, c] of frame) {
    if (c <= 0) continue;
    ctx.beginPath();
    ctx.arc(px(x), py(y), 2.5, 0, 2 * Math.PI);
    ctx.fill();
  }
}

function tick(now) {
  requestAnimationFrame(tick);  // first, so one bad figure cannot stop the loop
  for (const anim of animations) {
    try { draw(anim, now); } catch (err) { console.warn("cannot draw a figure", err); }
  }
}
requestAnimationFrame(tick);

form.addEventListener("submit", (event) => {
  event.preventDefault();
  runSearch(queryInput.value);
});
for (const button of document.querySelectorAll(".example")) {
  button.addEventListener("click", () => {
    queryInput.value = button.textContent;
    runSearch(button.textContent);
  });
}
const initial = new URLSearchParams(location.search).get("q");
if (initial) { queryInput.value = initial; runSearch(initial); }
