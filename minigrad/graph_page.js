// The script of the page that minigrad.html.to_html writes.  It reads the JSON that
// Python embedded, shows one Graphviz SVG at a time, and replays the forward pass (the
// ops in the order they were recorded) and the trace's backward steps on it: the step
// that runs is always opened, in view and legible.  Plain DOM and SVG, no libraries.
// Every number shown is from the JSON.
"use strict";

const DATA = JSON.parse(document.getElementById("graph-data").textContent);
const $ = (id) => document.getElementById(id);

const LEGIBLE_PX = 11.5;   // the running op's label is drawn at least this high (px) ...
const COMFORTABLE_PX = 13; // ... and at most this high, when its arrows fit anyway

const page = {
  view: DATA.start, // "forward" or "backward"
  state: 0,         // index into DATA.views[view].states: which box is open (0: none)
  step: 0,          // backward: 0 before backward; k when DATA.steps[k - 1] has just run
  fstep: 0,         // forward: k when the op making DATA.forward[k - 1] has just run
  learnerOpened: null, // the scope of the box the learner opened (stepping keeps it open)
  follow: true,     // pan and zoom onto each step (until "fit", a drag or the wheel)
  pinned: null,     // the vertex whose details stay in the panel after a click
  timer: null,      // set while playing
  zoom: { x: 0, y: 0, s: 1 },
};

// What the current SVG holds, filled by draw() from the state's cache.
let nodes = {};   // vertex id -> its <g class="node">
let edges = [];   // [<g class="edge">, [src, dst, tensor, input index or -1], its gradient <text> or null, parts]

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

// A number that keeps its exact value in data-value (the tests read it); negative in red.
function num(x, id) {
  const sign = typeof x === "number" && x < 0 ? " neg" : "";
  return `<span class="num${sign}"${id ? ` id="${id}"` : ""} data-value="${x}">${fmt(x)}</span>`;
}

function esc(text) {
  return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

function shape(s) {
  return s.length ? `(${s.join(", ")}${s.length === 1 ? "," : ""})` : "scalar";
}

function size(s) { return s.reduce((a, b) => a * b, 1); }

function tensorName(k) {
  const t = DATA.tensors[k];
  return t.name || `${t.op ? t.op + " output" : "tensor"} ${shape(t.shape)}`;
}

// A small histogram of a larger array: bars from min to max.
function histogram(counts) {
  const top = Math.max(...counts);
  const bars = counts.map((c, i) => {
    const h = top ? Math.max(1, Math.round(24 * c / top)) : 0;
    return `<rect x="${i * 10}" y="${24 - h}" width="9" height="${h}" fill="#748ffc"><title>${c}</title></rect>`;
  });
  return `<svg class="histogram" width="${counts.length * 10}" height="24">${bars.join("")}</svg>`;
}

// Values in full (small arrays), else statistics and a histogram.  `role` names the
// block for the tests ("g", "out", "arg0", "sent0", "value", ...).
function values(summary, role) {
  if (!summary) return `<div class="values hint" data-role="${role}">none</div>`;
  if (summary.values) {
    return `<div class="values" data-role="${role}">[${summary.values.map((v) => num(v)).join(", ")}]</div>`;
  }
  return `<div class="values" data-role="${role}">mean ${num(summary.mean)} std ${num(summary.std)}<br>` +
    `min ${num(summary.min)} max ${num(summary.max)}` +
    (summary.histogram ? `<br>${histogram(summary.histogram)}` : "") + "</div>";
}

function currentView() { return DATA.views[page.view]; }
function currentState() { return currentView().states[page.state]; }
function backward() { return page.view === "backward"; }
function stepCount() { return backward() ? DATA.steps.length : DATA.forward.length; }
function position() { return backward() ? page.step : page.fstep; }

// The tensor whose op runs at step k (1-based) of the current view's stepper.
function tensorAt(k) { return backward() ? DATA.steps[k - 1].tensor : DATA.forward[k - 1]; }

// The vertex drawn for vertex `id` now: itself, the closed box hiding it, or null
// (not drawn, e.g. past max_nodes).
function shown(id) {
  if (id === undefined) return null;
  if (nodes[id]) return id;
  const box = currentState().hidden[id];
  return box && nodes[box] ? box : null;
}

// ------------------------------------------------------------------ drawing a state

// Each state's SVG is parsed once and kept: opening a box the second time is a swap.
const parsed = {};

function parse(viewName, index) {
  const key = `${viewName}/${index}`;
  if (parsed[key]) return parsed[key];
  const state = DATA.views[viewName].states[index];
  const holder = document.createElement("div");
  holder.innerHTML = state.svg;
  const svg = holder.querySelector("svg");
  const drawn = { svg, nodes: {}, edges: [], overview: null };
  for (const g of svg.querySelectorAll("g.node")) {
    const id = g.querySelector("title").textContent;
    drawn.nodes[id] = g;
    g.addEventListener("mouseenter", () => { if (!page.pinned) details(id); });
    g.addEventListener("click", () => clickNode(id));
  }
  // Graphviz may write the edges in another order than the DOT text: pair them by their
  // titles ("src->dst"), taking arrows between the same two vertices in turn.
  const byTitle = {};
  for (const g of svg.querySelectorAll("g.edge")) {
    (byTitle[g.querySelector("title").textContent] ??= []).push(g);
  }
  drawn.edges = state.edges.map((edge, i) => {
    const g = byTitle[`${edge[0]}->${edge[1]}`].shift();
    const parts = state.reveal[i];
    // The label's last line is the gradients' (laid out by Graphviz with its final text).
    const texts = g.querySelectorAll("text");
    const sent = parts.length ? texts[texts.length - 1] : null;
    if (sent) sent.classList.add("sent");
    return [g, edge, sent, parts];
  });
  for (const g of svg.querySelectorAll("g.cluster")) {
    const name = g.querySelector("title").textContent;
    g.classList.toggle("opened", name === state.opened);
    if (state.closers.includes(name)) {
      g.classList.add("closer");
      g.addEventListener("click", () => { if (!dragged) openBox(null); });
    }
  }
  return (parsed[key] = drawn);
}

function draw() {
  const drawn = parse(page.view, page.state);
  const canvas = $("canvas");
  if (canvas.firstChild !== drawn.svg) canvas.replaceChildren(drawn.svg);
  nodes = drawn.nodes;
  edges = drawn.edges;
  if (!drawn.overview) {
    drawn.svg.style.transform = "none";
    drawn.overview = overview(drawn);
  }
  applyZoom();
}

// Where each node sits in the unscaled SVG (CSS px), for the minimap.
function overview(drawn) {
  const base = drawn.svg.getBoundingClientRect();
  const rects = {};
  for (const [id, g] of Object.entries(drawn.nodes)) {
    const r = g.getBoundingClientRect();
    rects[id] = [r.left - base.left, r.top - base.top, r.width, r.height];
  }
  return { width: base.width, height: base.height, rects };
}

// ------------------------------------------------------------------ the stepper

// Open the box the running op is in (closing a box the stepper opened when the step
// leaves it; a box the learner opened stays open while the step runs outside every box).
function follow() {
  const k = position();
  if (!k) return;
  const view = currentView();
  const id = view.opOf[tensorAt(k)];
  const states = view.states;
  if (states.length < 2 || id === undefined) return;
  let wanted;
  if (!states[0].hidden[id]) {
    const mine = states.findIndex((s) => s.expand === page.learnerOpened);
    wanted = page.learnerOpened !== null && mine > 0 ? mine : 0;
  } else if (states[page.state].hidden[id] === undefined && page.state > 0) {
    wanted = page.state; // drawn in the open box already
  } else {
    const box = states[0].boxes[states[0].hidden[id]];
    wanted = Math.max(0, states.findIndex((s) => s.expand === box.scope));
    if (wanted && states[wanted].expand !== page.learnerOpened) page.learnerOpened = null;
  }
  if (wanted !== page.state) {
    page.state = wanted;
    draw();
  }
}

function highlight() {
  for (const el of $("canvas").querySelectorAll(".done, .current, .receiving, .carrying, .selected")) {
    el.classList.remove("done", "current", "receiving", "carrying", "selected");
  }
  if (page.pinned && nodes[page.pinned]) nodes[page.pinned].classList.add("selected");
  const view = currentView();
  const k = position();
  // Each arrow shows the gradients sent along it by the steps that have run.
  for (const [, , sent, parts] of edges) {
    if (!sent) continue;
    const run = backward() ? parts.filter(([s]) => s < k) : [];
    sent.style.visibility = run.length ? "visible" : "hidden";
    if (run.length) sent.textContent = run.map(([, text]) => text).join(", ");
  }
  for (let j = 1; j < k; j++) {
    const id = shown(view.opOf[tensorAt(j)]);
    if (id) nodes[id].classList.add("done");
  }
  $("slider").max = stepCount();
  $("slider").value = k;
  $("step-label").textContent = `${backward() ? "step" : "op"} ${k} / ${stepCount()}`;
  if (k === 0) {
    $("step-info").innerHTML = backward()
      ? (DATA.steps.length ? "Before backward. Press <b>next ▶</b> (or →) to run the first rule."
        : "<span class='hint'>No backward steps: pass trace= (from minigrad.trace()) to step through backward.</span>")
      : "Before the forward pass. Press <b>next ▶</b> (or →) to run the first op.";
    $("step-panel").innerHTML = "";
    drawOverview();
    return;
  }
  const tensor = tensorAt(k);
  const here = shown(view.opOf[tensor]);
  if (here) nodes[here].classList.add("current");
  if (backward()) {
    const step = DATA.steps[k - 1];
    for (const input of step.inputs) {
      // The gradient goes to the VJP of the op that made the input, or to a leaf.
      const target = shown(view.opOf[input.tensor] ?? view.tensorOf[input.tensor]);
      if (target && target !== here) nodes[target].classList.add("receiving");
      // The arrows between this VJP and that input (a collapsed box's arrows have no index).
      for (const [g, [src, , t, index]] of edges) {
        if (t === input.tensor && src === here && (index === input.index || index === -1)) g.classList.add("carrying");
      }
    }
    $("step-info").innerHTML = describeStep(step);
    $("step-panel").innerHTML = stepPanel(step);
  } else {
    // Forward: the op's inputs flow in along its arrows, its output is made.
    const made = shown(view.tensorOf[tensor]);
    if (made && made !== here) nodes[made].classList.add("receiving");
    for (const [g, [, dst]] of edges) if (dst === here && here !== made) g.classList.add("carrying");
    $("step-info").innerHTML = describeOp(tensor, k);
    $("step-panel").innerHTML = opPanel(tensor, k);
  }
}

function describeStep(step) {
  const arrived = step.grad_count > 1 ? ` (the sum of ${step.grad_count} gradients)` : "";
  return `<b>Step ${step.number}</b>: <b id="step-op">${esc(step.op)}</b> VJP` +
    (step.scope ? ` in <i>${esc(step.scope)}</i>` : "") +
    ` · gradient arriving |ḡ| = ${num(step.grad_norm, "step-grad")}${arrived}` +
    ` · sends ${step.inputs.length} gradient${step.inputs.length === 1 ? "" : "s"}`;
}

function describeOp(tensor, k) {
  const t = DATA.tensors[tensor];
  return `<b>Op ${k}</b>: <b id="step-op">${esc(t.op)}</b>` + (t.scope ? ` in <i>${esc(t.scope)}</i>` : "") +
    ` → ${esc(tensorName(tensor))}`;
}

// A rule written element by element with the traced numbers (ops in DATA.rules[op].formulas).
function substitute(step, input) {
  const formula = DATA.rules[step.op]?.formulas?.[input.index];
  const sent = input.grad?.values;
  if (!formula || !sent) return [];
  const m = sent.length;
  const operands = { g: step.grad?.values, out: step.out?.values, a: step.args[0]?.values,
                     b: step.args[1]?.values, x: step.args[0]?.values };
  const n = size(step.shapes[input.index]) / size(step.shape);
  const symbols = formula.match(/\b(g|out|a|b|x|n)\b/g) || [];
  for (const s of symbols) {
    if (s !== "n" && (!operands[s] || (operands[s].length !== 1 && operands[s].length !== m))) return [];
  }
  const pretty = (text) => text.replace(/\*\*2\b/g, "²").replace(/\*\*/g, "^").replace(/\*/g, "·")
    .replace(/ - |(?<=^|\()-/g, (c) => c.replace("-", "−"));
  const lines = [];
  for (let j = 0; j < m; j++) {
    const expr = formula.replace(/\b(g|out|a|b|x|n)\b/g, (s) => {
      if (s === "n") return String(n);
      const v = operands[s].length === 1 ? operands[s][0] : operands[s][j];
      const text = fmt(v);
      return typeof v === "number" && v < 0 ? `(${text})` : text;
    });
    const index = m > 1 ? `[${j}]` : "";
    lines.push(`<div class="subst" data-input="${input.index}" data-element="${j}" data-expr="${esc(expr)}">` +
      `${pretty(formula.replace(/\bg\b/g, "ḡ"))} = ${pretty(expr)} = ${num(sent[j])}` +
      `<span class="hint"> ${index}</span></div>`);
  }
  return lines;
}

// The numbers of one backward step: the gradient arriving, the values the rule uses, and
// per input the gradient it receives (with the rule written out where it is elementwise).
function stepPanel(step) {
  const rule = DATA.rules[step.op] || {};
  const t = DATA.tensors[step.tensor];
  let text = `<h3>step ${step.number}: ${esc(step.op)} VJP</h3>` +
    (rule.rule ? `<div class="rule">${esc(rule.rule)}</div>` : "") +
    (rule.doc ? `<details><summary>docstring of ${esc(step.op)}</summary><pre>${esc(rule.doc)}</pre></details>` : "") +
    `<h4>ḡ, the gradient arriving at ${esc(tensorName(step.tensor))} ${shape(t.shape)}` +
    (step.grad_count > 1 ? `, the sum of ${step.grad_count}` : "") + "</h4>" + values(step.grad, "g") +
    `<h4>out, the output the forward pass saved</h4>` + values(step.out, "out");
  step.args.forEach((arg, i) => {
    text += `<h4>input ${i}: ${esc(tensorName(step.operands[i]))} ` +
      `${shape(step.shapes[i])}</h4>` + values(arg, `arg${i}`);
  });
  for (const input of step.inputs) {
    text += `<h4 data-sent="${input.index}">→ gradient sent to input ${input.index}: |g| = ${num(input.norm)}` +
      (input.count > 1 ? `; its ${input.count} gradients add up to |Σ| = ${num(input.sum)}` : "") + "</h4>" +
      values(input.grad, `sent${input.index}`) + substitute(step, input).join("");
  }
  if (!step.inputs.length) text += "<p class='hint'>(no input needs a gradient)</p>";
  return text;
}

function opPanel(tensor, k) {
  const t = DATA.tensors[tensor];
  const rule = DATA.rules[t.op] || {};
  return `<h3>op ${k}: ${esc(t.op)}</h3>` +
    (rule.doc ? `<details><summary>docstring of ${esc(t.op)}</summary><pre>${esc(rule.doc)}</pre></details>` : "") +
    `<h4>its output ${esc(tensorName(tensor))} ${shape(t.shape)}</h4>` + values(t.value, "value");
}

function setStep(k) {
  k = Math.max(0, Math.min(stepCount(), k));
  if (backward()) page.step = k; else page.fstep = k;
  follow();
  highlight();
  if (page.follow) focus();
  drawOverview();
}

function play() {
  if (page.timer) return stop();
  if (position() >= stepCount()) setStep(0);
  $("play").textContent = "pause";
  const tick = () => {
    if (position() >= stepCount()) return stop();
    setStep(position() + 1);
    page.timer = setTimeout(tick, Number($("speed").value));
  };
  page.timer = setTimeout(tick, 0);
}

function stop() {
  clearTimeout(page.timer);
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
  setStep(position());
  if (!position()) showStart();
}

function openBox(scope) {
  page.state = Math.max(0, currentView().states.findIndex((s) => s.expand === scope));
  page.learnerOpened = scope;
  page.pinned = null;
  draw();
  highlight();
  const opened = $("canvas").querySelector("g.cluster.opened");
  if (opened) zoomTo(opened); else fit();
  drawOverview();
}

function clickNode(id) {
  if (dragged) return;
  const box = currentState().boxes[id];
  if (box) return openBox(box.scope);
  page.pinned = page.pinned === id ? null : id;
  details(id);
  highlight();
}

// The node panel: what a vertex stands for, with numbers from the JSON.
function details(id) {
  const box = currentState().boxes[id];
  if (box) {
    $("node-panel").innerHTML = `<h3>${esc(DATA.scopes[box.scope])}</h3><p>a closed box of ${box.ops} ops.` +
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
  text += `<h4>value</h4>${values(t.value, "node-value")}`;
  // Its own steps: the gradient that arrived at it when its VJP ran.
  for (const step of DATA.steps.filter((s) => s.tensor === k)) {
    text += `<h4>gradient at step ${step.number}: |ḡ| = ${num(step.grad_norm)}` +
      (step.grad_count > 1 ? `, the sum of ${step.grad_count}` : "") + `</h4>${values(step.grad, "node-grad")}`;
  }
  if (t.grad) text += `<h4>.grad</h4>${values(t.grad, "node-dotgrad")}`;
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
  if (received.length) text += `<h4>gradients received</h4>${received.join("<br>")}`;
  $("node-panel").innerHTML = text;
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
function showRect(x, y, width, height, most = 2) {
  const view = $("viewport").getBoundingClientRect();
  const s = Math.min(view.width / width, view.height / height * 1, most) * 0.95;
  page.zoom = { s, x: (view.width - s * width) / 2 - s * x, y: (view.height - s * height) / 2 - s * y };
  applyZoom();
}

function fit() {
  const svg = $("canvas").querySelector("svg");
  svg.style.transform = "none";
  const r = svg.getBoundingClientRect();
  showRect(0, 0, r.width, r.height);
}

// An element's rectangle in unscaled SVG pixels: [left, top, right, bottom].
function unscaled(element) {
  const view = $("viewport").getBoundingClientRect();
  const r = element.getBoundingClientRect();
  const z = page.zoom;
  return [(r.left - view.left - z.x) / z.s, (r.top - view.top - z.y) / z.s,
    (r.right - view.left - z.x) / z.s, (r.bottom - view.top - z.y) / z.s];
}

function zoomTo(element) {
  const [l, t, r, b] = unscaled(element);
  showRect(l, t, r - l, b - t);
}

// Pan and zoom onto the step: the running op, the arrows its gradients (or inputs)
// travel and the nodes they reach; the op's label at least LEGIBLE_PX high.  When all of
// that does not fit at that size, the op stays in view and the rest is centred on as
// far as it can be.
function focus() {
  const current = $("canvas").querySelector("g.node.current");
  if (!current) return showStart();
  const parts = [current, ...$("canvas").querySelectorAll("g.node.receiving, g.edge.carrying")];
  const rects = parts.map(unscaled);
  const box = [Math.min(...rects.map((r) => r[0])), Math.min(...rects.map((r) => r[1])),
    Math.max(...rects.map((r) => r[2])), Math.max(...rects.map((r) => r[3]))];
  const label = current.querySelector("text");
  const [, lt, , lb] = unscaled(label);
  const textHeight = lb - lt; // at scale 1
  const view = $("viewport").getBoundingClientRect();
  const margin = 24;
  const fits = Math.min((view.width - 2 * margin) / (box[2] - box[0]), (view.height - 2 * margin) / (box[3] - box[1]));
  const s = Math.max(LEGIBLE_PX / textHeight, Math.min(fits, COMFORTABLE_PX / textHeight));
  let x = view.width / 2 - s * (box[0] + box[2]) / 2;
  let y = view.height / 2 - s * (box[1] + box[3]) / 2;
  // Keep the op itself inside the window.
  const [nl, nt, nr, nb] = rects[0];
  x += Math.max(0, margin - (s * nl + x)) - Math.max(0, s * nr + x - (view.width - margin));
  y += Math.max(0, margin - (s * nt + y)) - Math.max(0, s * nb + y - (view.height - margin));
  page.zoom = { s, x, y };
  applyZoom();
}

// Before the first step: the output (where backward starts) or the first inputs, legible.
function showStart() {
  const view = currentView();
  const first = backward() ? view.tensorOf[DATA.steps[0]?.tensor] ?? view.opOf[DATA.steps[0]?.tensor]
                           : view.opOf[DATA.forward[0]];
  const g = first && nodes[shown(first)];
  if (!g) return fit();
  const [l, t, r, b] = unscaled(g);
  const [, lt, , lb] = unscaled(g.querySelector("text"));
  const view2 = $("viewport").getBoundingClientRect();
  const s = COMFORTABLE_PX / (lb - lt);
  page.zoom = { s, x: view2.width / 2 - s * (l + r) / 2, y: view2.height / 4 - s * (t + b) / 2 };
  applyZoom();
}

// The minimap: every node of the drawn state, the running op as a red dot, the window
// as a rectangle.  Clicking it moves the window there.
function drawOverview() {
  const drawn = parse(page.view, page.state);
  const map = drawn.overview;
  const canvas = $("minimap");
  const c = canvas.getContext("2d");
  c.clearRect(0, 0, canvas.width, canvas.height);
  if (!map) return;
  const s = Math.min(canvas.width / map.width, canvas.height / map.height);
  const ox = (canvas.width - s * map.width) / 2;
  const oy = (canvas.height - s * map.height) / 2;
  canvas.dataset.scale = s;
  canvas.dataset.ox = ox;
  canvas.dataset.oy = oy;
  for (const [id, [x, y, w, h]] of Object.entries(map.rects)) {
    const g = nodes[id];
    c.fillStyle = g.classList.contains("current") ? "#d6336c" : g.classList.contains("done") ? "#74c0fc" : "#ced4da";
    c.fillRect(ox + s * x, oy + s * y, Math.max(1.5, s * w), Math.max(1.5, s * h));
  }
  const current = $("canvas").querySelector("g.node.current title");
  if (current && map.rects[current.textContent]) {
    const [x, y, w, h] = map.rects[current.textContent];
    c.fillStyle = "#d6336c";
    c.beginPath();
    c.arc(ox + s * (x + w / 2), oy + s * (y + h / 2), 4, 0, 2 * Math.PI);
    c.fill();
  }
  const view = $("viewport").getBoundingClientRect();
  const z = page.zoom;
  c.strokeStyle = "#343a40";
  c.lineWidth = 1.5;
  c.strokeRect(ox + s * (-z.x / z.s), oy + s * (-z.y / z.s), s * view.width / z.s, s * view.height / z.s);
}

$("minimap").addEventListener("click", (e) => {
  const canvas = $("minimap");
  const r = canvas.getBoundingClientRect();
  const s = Number(canvas.dataset.scale);
  const x = (e.clientX - r.left - Number(canvas.dataset.ox)) / s;
  const y = (e.clientY - r.top - Number(canvas.dataset.oy)) / s;
  const view = $("viewport").getBoundingClientRect();
  page.zoom.x = view.width / 2 - page.zoom.s * x;
  page.zoom.y = view.height / 2 - page.zoom.s * y;
  page.follow = false;
  applyZoom();
  drawOverview();
});

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
  drawOverview();
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
  if (dragged) drawOverview();
  dragStart = null;
  $("viewport").classList.remove("dragging");
  setTimeout(() => { dragged = false; }); // after the click event that ends this drag
});

// ------------------------------------------------------------------ find

// Names to find: every scope, and every named tensor.
const findNames = [...new Set([...DATA.scopes, ...DATA.tensors.map((t) => t.name).filter(Boolean)])];
$("find-names").innerHTML = findNames.map((name) => `<option value="${esc(name)}">`).join("");

// The first step of the current view that runs an op in a scope containing `query`, or
// whose tensor (or an input it sends to) has that name.
function find(query) {
  query = query.trim();
  if (!query) return 0;
  const matches = (k) => DATA.tensors[k].name === query;
  for (let k = 1; k <= stepCount(); k++) {
    const tensor = tensorAt(k);
    const scope = backward() ? DATA.steps[k - 1].scope : DATA.tensors[tensor].scope;
    if (scope.includes(query) || matches(tensor) ||
        (backward() && DATA.steps[k - 1].inputs.some((input) => matches(input.tensor)))) return k;
  }
  return 0;
}

$("find").addEventListener("change", () => {
  const k = find($("find").value);
  if (k) {
    stop();
    page.follow = true;
    setStep(k);
  } else {
    $("step-info").innerHTML = `<span class="hint">No ${backward() ? "step" : "op"} runs in or sends to ` +
      `“${esc($("find").value)}”.</span>`;
  }
});

// ------------------------------------------------------------------ controls

function stepBy(d) { stop(); page.follow = true; setStep(position() + d); }

$("prev").addEventListener("click", () => stepBy(-1));
$("next").addEventListener("click", () => stepBy(1));
$("play").addEventListener("click", () => { page.follow = true; play(); });
$("slider").addEventListener("input", () => { stop(); page.follow = true; setStep(Number($("slider").value)); });
$("fit").addEventListener("click", () => { page.follow = false; fit(); drawOverview(); });
$("view-forward").addEventListener("click", () => setView("forward"));
$("view-backward").addEventListener("click", () => setView("backward"));
$("viewport").addEventListener("wheel", () => { page.follow = false; });
document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return; // they handle their own keys
  if (e.key === "ArrowRight") stepBy(1);
  else if (e.key === "ArrowLeft") stepBy(-1);
  else if (e.key === " ") { e.preventDefault(); page.follow = true; play(); }
});
$("legend-list").innerHTML = DATA.notation.map(([symbol, meaning]) => `<dt>${esc(symbol)}</dt><dd>${esc(meaning)}</dd>`)
  .join("");

setView(page.view);
performance.mark("graph-interactive"); // for measuring load-to-interactive time
document.body.dataset.ready = "true";

// Parse the other states while the page is idle, so that stepping into a box is a swap.
(function parseLater(queue) {
  if (!queue.length) return;
  const next = () => { parse(...queue.shift()); parseLater(queue); };
  if (window.requestIdleCallback) requestIdleCallback(next); else setTimeout(next, 50);
})(Object.entries(DATA.views).flatMap(([name, view]) => view.states.map((_, i) => [name, i])));
