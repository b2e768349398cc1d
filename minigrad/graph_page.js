// The script of the page that minigrad.html.to_html writes.  It reads the JSON that
// Python embedded, shows one Graphviz SVG at a time, and replays the trace's backward
// steps on it.  Plain DOM and SVG, no libraries.  Every number shown is from the JSON.
"use strict";

const DATA = JSON.parse(document.getElementById("graph-data").textContent);
const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";

const page = {
  view: DATA.start, // "forward" or "backward"
  state: 0,         // index into DATA.views[view].states: which box is open (0: none)
  step: 0,          // 0 before backward; k when DATA.steps[k - 1] has just run
  pinned: null,     // the vertex whose details stay in the panel after a click
  timer: null,      // set while playing
  zoom: { x: 0, y: 0, s: 1 },
};

// What the current SVG holds, filled by draw().
let nodes = {};   // vertex id -> its <g class="node">
let edges = [];   // [<g class="edge">, [src, dst, tensor, input index or -1]] per arrow

// Per view, tensor number -> the id of the vertex of the op that made it / of the tensor.
for (const view of Object.values(DATA.views)) {
  view.opOf = {};
  view.tensorOf = {};
  for (const [id, [tensor, kind]] of Object.entries(view.vertices)) {
    (kind === "op" ? view.opOf : view.tensorOf)[tensor] = id;
  }
}

// ------------------------------------------------------------------ small helpers

// 4 significant digits; the JSON sends inf and nan as strings.
function fmt(x) {
  if (typeof x === "string") return x;
  const a = Math.abs(x);
  if (a === 0 || (a >= 1e-3 && a < 1e5)) return String(Number(x.toPrecision(4)));
  return x.toExponential(3);
}

// A number that keeps its exact value in data-value (the tests read it).
function num(x, id) {
  return `<span class="num"${id ? ` id="${id}"` : ""} data-value="${x}">${fmt(x)}</span>`;
}

function esc(text) {
  return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

function shape(s) {
  return s.length ? `(${s.join(", ")}${s.length === 1 ? "," : ""})` : "scalar";
}

function tensorName(k) {
  const t = DATA.tensors[k];
  return t.name || `${t.op ? t.op + " output" : "tensor"} ${shape(t.shape)}`;
}

function stats(summary) {
  if (!summary) return "<span class='hint'>none</span>";
  let text = `mean ${num(summary.mean)} std ${num(summary.std)}<br>min ${num(summary.min)} max ${num(summary.max)}`;
  if (summary.values) text += `<pre>[${summary.values.map(fmt).join(", ")}]</pre>`;
  return text;
}

function currentView() { return DATA.views[page.view]; }
function currentState() { return currentView().states[page.state]; }

// The vertex drawn for vertex `id` now: itself, the closed box hiding it, or null
// (not drawn, e.g. past max_nodes).
function shown(id) {
  if (id === undefined) return null;
  if (nodes[id]) return id;
  const box = currentState().hidden[id];
  return box && nodes[box] ? box : null;
}

// ------------------------------------------------------------------ drawing a state

function draw() {
  const state = currentState();
  $("canvas").innerHTML = state.svg;
  const svg = $("canvas").querySelector("svg");
  nodes = {};
  for (const g of svg.querySelectorAll("g.node")) {
    const id = g.querySelector("title").textContent;
    nodes[id] = g;
    g.addEventListener("mouseenter", () => { if (!page.pinned) details(id); });
    g.addEventListener("click", () => clickNode(id));
  }
  // Graphviz may write the edges in another order than the DOT text: pair them by their
  // titles ("src->dst"), taking arrows between the same two vertices in turn.
  const byTitle = {};
  for (const g of svg.querySelectorAll("g.edge")) {
    (byTitle[g.querySelector("title").textContent] ??= []).push(g);
  }
  edges = state.edges.map((edge) => [byTitle[`${edge[0]}->${edge[1]}`].shift(), edge]);
  for (const g of svg.querySelectorAll("g.cluster")) {
    const name = g.querySelector("title").textContent;
    g.classList.toggle("opened", name === state.opened);
    if (state.closers.includes(name)) {
      g.classList.add("closer");
      g.addEventListener("click", () => { if (!dragged) openBox(null); });
    }
  }
  svg.style.transform = "none";
  highlight();
}

// Text on the graph, in the SVG's own coordinates, so that it pans and zooms along.
function badge(text, x, y, kind) {
  const t = document.createElementNS(SVG_NS, "text");
  t.setAttribute("x", x);
  t.setAttribute("y", y);
  t.setAttribute("class", `badge ${kind}`);
  if (kind === "edge") t.setAttribute("text-anchor", "end");
  t.textContent = text;
  $("canvas").querySelector("g.graph").appendChild(t);
}

// ------------------------------------------------------------------ the backward stepper

function highlight() {
  for (const el of $("canvas").querySelectorAll(".done, .current, .receiving, .carrying, .selected")) {
    el.classList.remove("done", "current", "receiving", "carrying", "selected");
  }
  for (const el of $("canvas").querySelectorAll("text.badge")) el.remove();
  if (page.pinned && nodes[page.pinned]) nodes[page.pinned].classList.add("selected");
  const view = currentView();
  for (let k = 0; k < page.step - 1; k++) {
    const id = shown(view.opOf[DATA.steps[k].tensor]);
    if (id) nodes[id].classList.add("done");
  }
  $("slider").value = page.step;
  $("step-label").textContent = `step ${page.step} / ${DATA.steps.length}`;
  if (page.step === 0) {
    $("step-info").innerHTML = DATA.steps.length
      ? "Before backward. Press <b>next ▶</b> (or →) to run the first rule."
      : "<span class='hint'>No backward steps: pass trace= (from minigrad.trace()) to step through backward.</span>";
    return;
  }
  const step = DATA.steps[page.step - 1];
  const here = shown(view.opOf[step.tensor]);
  if (here) nodes[here].classList.add("current");
  const sums = {}; // vertex -> the input whose running sum it shows (the last one sent there)
  for (const input of step.inputs) {
    // The gradient goes to the VJP of the op that made the input (backward view), or to a
    // leaf; in the forward view, to the input tensor itself.
    const to = page.view === "backward" ? (view.opOf[input.tensor] ?? view.tensorOf[input.tensor])
                                        : view.tensorOf[input.tensor];
    const target = shown(to);
    if (target && target !== here) {
      nodes[target].classList.add("receiving");
      sums[target] = input;
    }
    // The arrows between this VJP and that input (a collapsed box's arrows have no index).
    for (const [g, [src, dst, tensor, index]] of edges) {
      const opEnd = page.view === "backward" ? src : dst;
      if (tensor === input.tensor && opEnd === here && (index === input.index || index === -1)) {
        g.classList.add("carrying");
        const path = g.querySelector("path");
        const p = path.getPointAtLength(path.getTotalLength() / 2);
        badge(`|g| ${fmt(input.norm)}`, p.x - 6, p.y + 4, "edge"); // left: Graphviz labels sit right
      }
    }
  }
  // Where a tensor has now received several gradients: their running sum.
  for (const [target, input] of Object.entries(sums)) {
    if (input.count > 1) {
      const b = nodes[target].getBBox();
      badge(`Σ of ${input.count}: |g| ${fmt(input.sum)}`, b.x + b.width + 4, b.y + 12, "sum");
    }
  }
  $("step-info").innerHTML = describeStep(step);
}

function describeStep(step) {
  const rule = DATA.rules[step.op]?.rule;
  const arrived = step.grad_count > 1 ? ` (the sum of ${step.grad_count} gradients)` : "";
  const sends = step.inputs.map((input) => {
    const sum = input.count > 1
      ? `; it has now received ${input.count} gradients, their sum has |Σ| = ${num(input.sum)}` : "";
    return `→ input ${input.index}, ${esc(tensorName(input.tensor))}: |g| = ${num(input.norm)}${sum}`;
  });
  return `<b>Step ${step.number}</b>: <b id="step-op">${esc(step.op)}</b> VJP` +
    (step.scope ? ` in <i>${esc(step.scope)}</i>` : "") +
    ` · gradient arriving |ḡ| = ${num(step.grad_norm, "step-grad")}${arrived}` +
    (rule ? ` · rule: <span class="rule">${esc(rule)}</span>` : "") +
    `<br><span id="step-sends">${sends.join("<br>") || "(no input needs a gradient)"}</span>`;
}

function setStep(k) {
  page.step = Math.max(0, Math.min(DATA.steps.length, k));
  highlight();
}

function play() {
  if (page.timer) return stop();
  if (page.step >= DATA.steps.length) setStep(0);
  $("play").textContent = "pause";
  page.timer = setInterval(() => (page.step < DATA.steps.length ? setStep(page.step + 1) : stop()), 700);
}

function stop() {
  clearInterval(page.timer);
  page.timer = null;
  $("play").textContent = "play";
}

// ------------------------------------------------------------------ views, boxes, details

function setView(name) {
  const scope = currentState().expand;
  page.view = name;
  // Keep the same box open if the other view has it.
  page.state = Math.max(0, currentView().states.findIndex((s) => s.expand === scope));
  $("view-forward").classList.toggle("on", name === "forward");
  $("view-backward").classList.toggle("on", name === "backward");
  draw();
  fit();
}

function openBox(scope) {
  page.state = Math.max(0, currentView().states.findIndex((s) => s.expand === scope));
  page.pinned = null;
  draw();
  fit();
  const opened = $("canvas").querySelector("g.cluster.opened");
  if (opened) zoomTo(opened);
}

function clickNode(id) {
  if (dragged) return;
  const box = currentState().boxes[id];
  if (box) return openBox(box.scope);
  page.pinned = page.pinned === id ? null : id;
  details(id);
  highlight();
}

// The panel: what a vertex stands for, with numbers from the JSON.
function details(id) {
  const box = currentState().boxes[id];
  if (box) {
    $("panel").innerHTML = `<h3>${esc(DATA.scopes[box.scope])}</h3><p>a closed box of ${box.ops} ops.` +
      " Click it to open it; click the opened cluster's border to close it.</p>";
    return;
  }
  const vertex = currentView().vertices[id];
  if (!vertex) return;
  const [k, kind] = vertex;
  const t = DATA.tensors[k];
  const rows = [["shape", shape(t.shape)], ["dtype", t.dtype], ["kind", t.role],
    ["scope", esc(t.scope || "-")], ["made by", t.op ? `<b>${esc(t.op)}</b>` : "(a leaf)"]];
  let text = `<h3>${kind === "op" ? `${esc(t.op)} → ` : ""}${esc(tensorName(k))}</h3><table>` +
    rows.map(([a, b]) => `<tr><td>${a}</td><td>${b}</td></tr>`).join("") + "</table>";
  const rule = t.op && DATA.rules[t.op];
  if (rule && rule.doc) {
    text += `<p>rule: <span class="rule">${esc(rule.rule || "(see the docstring)")}</span></p>` +
      `<details><summary>docstring of ${esc(t.op)}</summary><pre>${esc(rule.doc)}</pre></details>`;
  }
  text += `<p><b>value</b><br>${stats(t.value)}</p>`;
  // Its own steps: the gradient that arrived at it when its VJP ran.
  for (const step of DATA.steps.filter((s) => s.tensor === k)) {
    text += `<p><b>gradient</b> at step ${step.number}: |ḡ| = ${num(step.grad_norm)}` +
      (step.grad_count > 1 ? `, the sum of ${step.grad_count}` : "") + `<br>${stats(step.grad)}</p>`;
  }
  if (t.grad) text += `<p><b>.grad</b><br>${stats(t.grad)}</p>`;
  // The gradients sent to it, one per use, and their running sum.
  const received = [];
  for (const step of DATA.steps) {
    for (const input of step.inputs) {
      if (input.tensor === k) {
        received.push(`step ${step.number} (${esc(step.op)}): |g| = ${num(input.norm)}` +
          (input.count > 1 ? `, running sum |Σ| = ${num(input.sum)}` : ""));
      }
    }
  }
  if (received.length) text += `<p><b>gradients received</b><br>${received.join("<br>")}</p>`;
  $("panel").innerHTML = text;
}

// ------------------------------------------------------------------ pan and zoom

// The SVG is moved and scaled with one CSS transform: screen = zoom.s * svg + (zoom.x, zoom.y).
let dragStart = null;
let dragged = false; // true from a drag's first move until the click that ends it

function applyZoom() {
  const z = page.zoom;
  $("canvas").querySelector("svg").style.transform = `translate(${z.x}px, ${z.y}px) scale(${z.s})`;
}

// Show the rectangle (in unscaled SVG pixels) as large as fits, centred.
function showRect(x, y, width, height) {
  const view = $("viewport").getBoundingClientRect();
  const s = Math.min(view.width / width, view.height / height, 2) * 0.95;
  page.zoom = { s, x: (view.width - s * width) / 2 - s * x, y: (view.height - s * height) / 2 - s * y };
  applyZoom();
}

function fit() {
  const svg = $("canvas").querySelector("svg");
  svg.style.transform = "none";
  const r = svg.getBoundingClientRect();
  showRect(0, 0, r.width, r.height);
}

function zoomTo(element) {
  const view = $("viewport").getBoundingClientRect();
  const r = element.getBoundingClientRect();
  const z = page.zoom;
  showRect((r.left - view.left - z.x) / z.s, (r.top - view.top - z.y) / z.s, r.width / z.s, r.height / z.s);
}

$("viewport").addEventListener("wheel", (e) => {
  e.preventDefault();
  const view = $("viewport").getBoundingClientRect();
  const mx = e.clientX - view.left;
  const my = e.clientY - view.top;
  const f = Math.exp(-e.deltaY * 0.0015);
  const z = page.zoom;
  // Zoom about the mouse: the SVG point under it stays under it.
  page.zoom = { s: z.s * f, x: mx - (mx - z.x) * f, y: my - (my - z.y) * f };
  applyZoom();
}, { passive: false });

$("viewport").addEventListener("pointerdown", (e) => {
  dragStart = { x: e.clientX, y: e.clientY, zx: page.zoom.x, zy: page.zoom.y };
  dragged = false;
});
window.addEventListener("pointermove", (e) => {
  if (!dragStart) return;
  const dx = e.clientX - dragStart.x;
  const dy = e.clientY - dragStart.y;
  if (Math.abs(dx) + Math.abs(dy) > 4) dragged = true; // a click that wobbles is still a click
  if (!dragged) return;
  $("viewport").classList.add("dragging");
  page.zoom.x = dragStart.zx + dx;
  page.zoom.y = dragStart.zy + dy;
  applyZoom();
});
window.addEventListener("pointerup", () => {
  dragStart = null;
  $("viewport").classList.remove("dragging");
  setTimeout(() => { dragged = false; }); // after the click event that ends this drag
});

// ------------------------------------------------------------------ controls

$("prev").addEventListener("click", () => { stop(); setStep(page.step - 1); });
$("next").addEventListener("click", () => { stop(); setStep(page.step + 1); });
$("play").addEventListener("click", play);
$("slider").max = DATA.steps.length;
$("slider").addEventListener("input", () => { stop(); setStep(Number($("slider").value)); });
$("fit").addEventListener("click", fit);
$("view-forward").addEventListener("click", () => setView("forward"));
$("view-backward").addEventListener("click", () => setView("backward"));
document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT") return; // the slider handles its own keys
  if (e.key === "ArrowRight") { stop(); setStep(page.step + 1); }
  else if (e.key === "ArrowLeft") { stop(); setStep(page.step - 1); }
  else if (e.key === " ") { e.preventDefault(); play(); }
});

setView(page.view);
performance.mark("graph-interactive"); // for measuring load-to-interactive time
document.body.dataset.ready = "true";
