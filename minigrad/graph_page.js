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

// Each state's SVG is parsed once and stays in the page, hidden with content-visibility
// while another state is shown: the browser keeps its style and layout, so opening a box
// shows an SVG laid out already instead of laying out a thousand elements again.
const parsed = {};

function parse(viewName, index) {
  const key = `${viewName}/${index}`;
  if (parsed[key]) return parsed[key];
  const state = DATA.views[viewName].states[index];
  const holder = document.createElement("div");
  holder.className = "state";
  holder.innerHTML = state.svg;
  $("canvas").append(holder);
  const svg = holder.querySelector("svg");
  const drawn = { holder, svg, nodes: {}, edges: [] };
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
  drawn.geometry = geometry(svg, drawn);
  drawn.lit = {}; // class -> the elements that have it now (highlight changes only the difference)
  return (parsed[key] = drawn);
}

// The drawing of the state shown now.
function currentDrawing() { return parse(page.view, page.state); }

// The numbers of a path's d or a polygon's points: x, y, x, y, ...
function coordinates(element) {
  if (element.tagName === "ellipse") {
    const [cx, cy, rx, ry] = ["cx", "cy", "rx", "ry"].map((a) => Number(element.getAttribute(a)));
    return [cx - rx, cy - ry, cx + rx, cy + ry];
  }
  return (element.getAttribute("d") || element.getAttribute("points") || "").match(/-?[\d.]+(?:e[-+]?\d+)?/g)
    .map(Number);
}

// Where each node and arrow sits, in CSS px of the unscaled SVG, read from Graphviz's
// coordinates (no layout needed): nodes {id: [left, top, right, bottom]}, arrows by index,
// and each node's label font size in px.
function geometry(svg, drawn) {
  const k = svg.width.baseVal.valueInSpecifiedUnits * (4 / 3) / svg.viewBox.baseVal.width; // pt -> px
  const shift = (svg.querySelector("g.graph").getAttribute("transform").match(/translate\(([-\d.]+) ([-\d.]+)\)/) || [0, 0, 0])
    .slice(1).map(Number);
  const extent = (elements) => {
    const xs = [], ys = [];
    for (const e of elements) {
      const c = coordinates(e);
      for (let i = 0; i + 1 < c.length; i += 2) { xs.push(c[i]); ys.push(c[i + 1]); }
    }
    return [(Math.min(...xs) + shift[0]) * k, (Math.min(...ys) + shift[1]) * k,
      (Math.max(...xs) + shift[0]) * k, (Math.max(...ys) + shift[1]) * k];
  };
  const shapes = (g) => g.querySelectorAll(":scope > :is(path, polygon, ellipse)");
  const nodes = {}, font = {};
  for (const [id, g] of Object.entries(drawn.nodes)) {
    nodes[id] = extent(shapes(g));
    font[id] = Number(g.querySelector("text")?.getAttribute("font-size") || 10) * k;
  }
  const edges = drawn.edges.map(([g]) => extent(shapes(g)));
  return { width: svg.width.baseVal.valueInSpecifiedUnits * (4 / 3),
    height: svg.height.baseVal.valueInSpecifiedUnits * (4 / 3), nodes, edges, font };
}

function draw() {
  const drawn = currentDrawing();
  for (const holder of $("canvas").querySelectorAll(".state.shown")) {
    if (holder !== drawn.holder) holder.classList.remove("shown");
  }
  drawn.holder.classList.add("shown");
  nodes = drawn.nodes;
  edges = drawn.edges;
  applyZoom();
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

// What is highlighted now, filled by highlight(): ids of the running op's vertex and of
// those its gradients reach, indices of the arrows they travel.
let lit = { current: null, receiving: [], carrying: [] };

// Give `cls` to exactly `elements` (changing only the difference: restyling a large SVG is slow).
function mark(cls, elements) {
  const drawn = currentDrawing();
  const had = drawn.lit[cls] || new Set();
  const want = new Set(elements);
  for (const el of had) if (!want.has(el)) el.classList.remove(cls);
  for (const el of want) if (!had.has(el)) el.classList.add(cls);
  drawn.lit[cls] = want;
}

function highlight() {
  const view = currentView();
  const k = position();
  // Each arrow shows the gradients sent along it by the steps that have run.
  for (const edge of edges) {
    const [, , sent, parts] = edge;
    if (!sent) continue;
    const run = backward() ? parts.filter(([s]) => s < k).length : 0;
    if (edge.run === run) continue;
    edge.run = run;
    sent.style.visibility = run ? "visible" : "hidden";
    if (run) sent.textContent = parts.slice(0, run).map(([, text]) => text).join(", ");
  }
  const done = [];
  for (let j = 1; j < k; j++) {
    const id = shown(view.opOf[tensorAt(j)]);
    if (id) done.push(nodes[id]);
  }
  lit = { current: null, receiving: [], carrying: [] };
  try {
    light(view, k);
  } finally {
    mark("done", done);
    mark("current", lit.current ? [nodes[lit.current]] : []);
    mark("receiving", lit.receiving.map((id) => nodes[id]));
    mark("carrying", lit.carrying.map((i) => edges[i][0]));
    mark("selected", page.pinned && nodes[page.pinned] ? [nodes[page.pinned]] : []);
  }
}

// Work out what step k lights up (into `lit`) and describe it.
function light(view, k) {
  $("slider").max = stepCount();
  $("slider").value = k;
  $("step-label").textContent = `${backward() ? "step" : "op"} ${k} / ${stepCount()}`;
  if (k === 0) {
    $("step-info").innerHTML = backward()
      ? (DATA.steps.length ? "Before backward. Press <b>next ▶</b> (or →) to run the first rule."
        : "<span class='hint'>No backward steps: pass trace= (from minigrad.trace()) to step through backward.</span>")
      : "Before the forward pass. Press <b>next ▶</b> (or →) to run the first op.";
    $("step-panel").innerHTML = "";
    return;
  }
  const tensor = tensorAt(k);
  const here = shown(view.opOf[tensor]);
  lit.current = here;
  if (backward()) {
    const step = DATA.steps[k - 1];
    for (const input of step.inputs) {
      // The gradient goes to the VJP of the op that made the input, or to a leaf.
      const target = shown(view.opOf[input.tensor] ?? view.tensorOf[input.tensor]);
      if (target && target !== here) lit.receiving.push(target);
      // The arrows between this VJP and that input (a collapsed box's arrows have no index).
      edges.forEach(([, [src, , t, index]], i) => {
        if (t === input.tensor && src === here && (index === input.index || index === -1)) lit.carrying.push(i);
      });
    }
    $("step-info").innerHTML = describeStep(step);
    $("step-panel").innerHTML = stepPanel(step);
  } else {
    // Forward: the op's inputs flow in along its arrows, its output is made.
    const made = shown(view.tensorOf[tensor]);
    if (made && made !== here) lit.receiving.push(made);
    edges.forEach(([, [, dst]], i) => { if (dst === here && here !== made) lit.carrying.push(i); });
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
      `${operandName(step, input.index)}̄${index} = ${pretty(formula.replace(/\bg\b/g, "ḡ"))} = ${pretty(expr)} = ` +
      `${num(sent[j])}</div>`);
  }
  return lines;
}

// What the rules call input i: x for an op of one input, else a, b, c, ...
function operandName(step, i) {
  return step.args.length === 1 ? "x" : "abcdefgh"[i] ?? `x${i}`;
}

// A tensor's name and shape, for a heading.
function named(k) {
  const t = DATA.tensors[k];
  return t.name ? `${esc(t.name)} ${shape(t.shape)}` : esc(tensorName(k));
}

// The numbers of one backward step: the gradient arriving, the values the rule uses, and
// per input the gradient it receives (with the rule written out where it is elementwise).
function stepPanel(step) {
  const rule = DATA.rules[step.op] || {};
  let text = `<h3>step ${step.number}: ${esc(step.op)} VJP</h3>` +
    (rule.rule ? `<div class="rule">${esc(rule.rule)}</div>` : "") +
    (rule.doc ? `<details><summary>docstring of ${esc(step.op)}</summary><pre>${esc(rule.doc)}</pre></details>` : "") +
    `<h4>ḡ, the gradient arriving at ${named(step.tensor)}` +
    (step.grad_count > 1 ? `, the sum of ${step.grad_count}` : "") + "</h4>" + values(step.grad, "g") +
    `<h4>out, the output the forward pass saved</h4>` + values(step.out, "out");
  step.args.forEach((arg, i) => {
    text += `<h4>${operandName(step, i)} = input ${i}: ${named(step.operands[i])}</h4>` + values(arg, `arg${i}`);
  });
  for (const input of step.inputs) {
    text += `<h4 data-sent="${input.index}">→ ${operandName(step, input.index)}̄, the gradient sent to input ` +
      `${input.index}: |g| = ${num(input.norm)}` +
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
    `<h4>its output ${named(tensor)}</h4>` + values(t.value, "value");
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
  const opened = currentDrawing().svg.querySelector("g.cluster.opened");
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

// The SVG has a layer of its own (will-change: transform), so that panning moves
// pixels already drawn instead of repainting thousands of elements.  A layer keeps the
// scale it was drawn at; after a new zoom it is dropped for one frame and made again,
// so that the labels are drawn sharp at the new size.
let layerScale = null;
function applyZoom() {
  const z = page.zoom;
  const svg = currentDrawing().svg;
  svg.style.transform = `translate(${z.x}px, ${z.y}px) scale(${z.s})`;
  if (z.s !== layerScale) {
    layerScale = z.s;
    svg.style.willChange = "auto";
    requestAnimationFrame(() => requestAnimationFrame(() => { svg.style.willChange = ""; }));
  }
}

// Show the rectangle (in unscaled SVG pixels) as large as fits, centred.
function showRect(x, y, width, height, most = 2) {
  const view = $("viewport").getBoundingClientRect();
  const s = Math.min(view.width / width, view.height / height * 1, most) * 0.95;
  page.zoom = { s, x: (view.width - s * width) / 2 - s * x, y: (view.height - s * height) / 2 - s * y };
  applyZoom();
}

function fit() {
  const svg = currentDrawing().svg;
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

// The window's size, read once and on resize (reading it while the SVG is being restyled
// would make the browser lay the SVG out there and then).
let windowSize = null;
function viewSize() {
  if (!windowSize) {
    const r = $("viewport").getBoundingClientRect();
    windowSize = { width: r.width, height: r.height };
  }
  return windowSize;
}
window.addEventListener("resize", () => { windowSize = null; });

// How high a label's glyphs are, per px of font size (measured once in this browser).
let glyphRatio = null;
function labelHeight(id) {
  const drawn = currentDrawing();
  if (glyphRatio === null) {
    const r = nodes[id].querySelector("text").getBoundingClientRect();
    glyphRatio = r.height / (drawn.geometry.font[id] * page.zoom.s);
  }
  return drawn.geometry.font[id] * glyphRatio;
}

// Pan and zoom onto the step: the running op, the arrows its gradients (or inputs)
// travel and the nodes they reach; the op's label COMFORTABLE_PX high if all of that fits
// so, else LEGIBLE_PX high.  When it does not fit even then, the op stays in view and
// the rest is centred on as far as it can be.  Positions come from Graphviz's coordinates, so this needs no layout.
function focus() {
  if (!lit.current) return showStart();
  const geo = currentDrawing().geometry;
  const rects = [geo.nodes[lit.current], ...lit.receiving.map((id) => geo.nodes[id]),
    ...lit.carrying.map((i) => geo.edges[i])];
  const box = [Math.min(...rects.map((r) => r[0])), Math.min(...rects.map((r) => r[1])),
    Math.max(...rects.map((r) => r[2])), Math.max(...rects.map((r) => r[3]))];
  const textHeight = labelHeight(lit.current); // at scale 1
  const view = viewSize();
  const margin = 24;
  const fits = Math.min((view.width - 2 * margin) / (box[2] - box[0]), (view.height - 2 * margin) / (box[3] - box[1]));
  // Two zooms only, so that stepping mostly pans (a new zoom repaints every label).
  const s = (fits >= COMFORTABLE_PX / textHeight ? COMFORTABLE_PX : LEGIBLE_PX) / textHeight;
  let x = view.width / 2 - s * (box[0] + box[2]) / 2;
  let y = view.height / 2 - s * (box[1] + box[3]) / 2;
  // Keep the op itself inside the window.
  const [nl, nt, nr, nb] = rects[0];
  x += Math.max(0, margin - (s * nl + x)) - Math.max(0, s * nr + x - (view.width - margin));
  y += Math.max(0, margin - (s * nt + y)) - Math.max(0, s * nb + y - (view.height - margin));
  page.zoom = { s, x, y };
  applyZoom();
}

// Before the first step: the output (where backward starts) or the first op, legible.
function showStart() {
  const view = currentView();
  const first = backward() ? view.tensorOf[DATA.steps[0]?.tensor] ?? view.opOf[DATA.steps[0]?.tensor]
                           : view.opOf[DATA.forward[0]];
  const id = first && shown(first);
  if (!id) return fit();
  const [l, t, r, b] = currentDrawing().geometry.nodes[id];
  const size = viewSize();
  const s = COMFORTABLE_PX / labelHeight(id);
  page.zoom = { s, x: size.width / 2 - s * (l + r) / 2, y: size.height / 4 - s * (t + b) / 2 };
  applyZoom();
}

// The minimap: every node of the drawn state, the running op as a red dot, the window
// as a rectangle.  Clicking it moves the window there.
function drawOverview() {
  const map = currentDrawing().geometry;
  const canvas = $("minimap");
  const c = canvas.getContext("2d");
  c.clearRect(0, 0, canvas.width, canvas.height);
  const s = Math.min(canvas.width / map.width, canvas.height / map.height);
  const ox = (canvas.width - s * map.width) / 2;
  const oy = (canvas.height - s * map.height) / 2;
  canvas.dataset.scale = s;
  canvas.dataset.ox = ox;
  canvas.dataset.oy = oy;
  const done = currentDrawing().lit.done || new Set();
  for (const [id, [l, t, r, b]] of Object.entries(map.nodes)) {
    c.fillStyle = done.has(nodes[id]) ? "#74c0fc" : "#ced4da";
    c.fillRect(ox + s * l, oy + s * t, Math.max(1.5, s * (r - l)), Math.max(1.5, s * (b - t)));
  }
  if (lit.current) {
    const [l, t, r, b] = map.nodes[lit.current];
    c.fillStyle = "#d6336c";
    c.beginPath();
    c.arc(ox + s * (l + r) / 2, oy + s * (t + b) / 2, 4, 0, 2 * Math.PI);
    c.fill();
  }
  const view = viewSize();
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
  const view = viewSize();
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

// Parse and lay out the other states while the page is idle (asking where a label is makes
// the browser lay out the hidden SVG), so that stepping into a box only has to show it.
(function parseLater(queue) {
  if (!queue.length) return performance.mark("graph-parsed"); // for measuring
  const next = () => {
    parse(...queue.shift()).svg.querySelector("text")?.getBoundingClientRect();
    parseLater(queue);
  };
  if (window.requestIdleCallback) requestIdleCallback(next); else setTimeout(next, 50);
})(Object.entries(DATA.views).flatMap(([name, view]) => view.states.map((_, i) => [name, i])));
