// The labeling page of `semisup label`: one selected trailer at a time, keyboard first.
// The server holds the truth: every answer is POSTed and written at once; this script only
// draws the current trailer and sends what the person chose.
"use strict";

const state = JSON.parse(document.getElementById("state").textContent);
const $ = (id) => document.getElementById(id);
const KEYS = "1234567890abcdefghijklmnopqrtvwxyz".split("");  // s and u are commands
const SEARCH_FROM = 13;  // vocabularies longer than this get a search box
let position = state.start;
let busy = false;

// one key per label, across tasks, in order (labels past the last key are reached by search or mouse)
const keyOf = {};
let nextKey = 0;
for (const task of state.tasks) {
  for (const label of task.labels) {
    if (nextKey < KEYS.length) keyOf[`${task.name}\u0000${label}`] = KEYS[nextKey++];
  }
}

function headers() {
  const out = { "Content-Type": "application/json" };
  if (state.token) out["X-Semisup-Token"] = state.token;
  return out;
}

async function post(path, body) {
  const response = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body) });
  let data = {};
  try { data = await response.json(); } catch (e) { data = { error: `${response.status} ${response.statusText}` }; }
  if (!response.ok) throw Object.assign(new Error(data.error || response.statusText), { data });
  return data;
}

function say(text, error = false) {
  $("message").textContent = text;
  $("message").className = error ? "error" : "";
}

function showProgress() {
  const c = state.counts;
  const done = state.rows.length - c.open;
  $("progress").textContent = `${done} of ${state.rows.length} done (${c.answered} answered, ${c.unsure} unsure, ` +
    `${c.skipped} skipped) · trailer ${Math.min(position + 1, state.rows.length)} of ${state.rows.length}`;
}

function chosenFor(row) {
  return row.status === "answered" || row.status === "unsure" ? row.answer : row.guess;
}

function renderTasks(row) {
  const form = $("tasks");
  form.replaceChildren();
  const chosen = chosenFor(row);
  for (const task of state.tasks) {
    const set = document.createElement("fieldset");
    set.dataset.task = task.name;
    const legend = document.createElement("legend");
    const kind = document.createElement("small");
    kind.textContent = task.kind === "multilabel" ? "any number" : "one";
    legend.append(task.name + " ", kind);
    set.append(legend);
    if (task.labels.length >= SEARCH_FROM) {
      const search = document.createElement("input");
      search.type = "search";
      search.className = "search";
      search.placeholder = `search ${task.labels.length} labels (/)`;
      search.addEventListener("input", () => {
        const q = search.value.trim().toLowerCase();
        for (const label of set.querySelectorAll(".choices label")) {
          label.hidden = q !== "" && !label.dataset.value.toLowerCase().includes(q);
        }
      });
      set.append(search);
    }
    const box = document.createElement("div");
    box.className = "choices";
    for (const value of task.labels) {
      const label = document.createElement("label");
      label.dataset.value = value;
      const input = document.createElement("input");
      input.type = task.kind === "multilabel" ? "checkbox" : "radio";
      input.name = task.name;
      input.value = value;
      input.checked = (chosen[task.name] || []).includes(value);
      input.addEventListener("click", (event) => {
        // a one-label task: clicking the chosen label again clears it
        if (input.type === "radio" && input.dataset.was === "1") input.checked = false;
        refreshMarks(set);
      });
      input.addEventListener("pointerdown", () => { input.dataset.was = input.checked ? "1" : "0"; });
      label.append(input);
      const key = keyOf[`${task.name}\u0000${value}`];
      if (key) { const k = document.createElement("kbd"); k.textContent = key; label.append(k); }
      label.append(document.createTextNode(" " + value));
      if ((row.guess[task.name] || []).includes(value)) {
        const mark = document.createElement("span");
        mark.className = "guess-mark";
        mark.textContent = "model";
        label.append(" ", mark);
      }
      box.append(label);
    }
    set.append(box);
    form.append(set);
    refreshMarks(set);
  }
}

function refreshMarks(set) {
  for (const label of set.querySelectorAll(".choices label")) {
    label.classList.toggle("checked", label.querySelector("input").checked);
  }
}

async function renderMedia(index) {
  const strip = $("strip");
  strip.replaceChildren();
  $("strip-note").textContent = "";
  const player = $("player");
  player.hidden = true;
  player.removeAttribute("src");
  const media = await fetch(`/api/strip/${index}`, { headers: headers() }).then((r) => r.json());
  if (index !== position) return;  // the person moved on meanwhile
  if (media.missing) { $("strip-note").textContent = "this trailer is no longer in the dataset"; return; }
  media.thumbs.forEach((url, k) => {
    const img = document.createElement("img");
    img.loading = "lazy";
    img.decoding = "async";
    img.alt = `frame ${k + 1}`;
    img.src = url;
    img.addEventListener("click", () => img.classList.toggle("big"));
    strip.append(img);
  });
  if (media.unreadable) $("strip-note").textContent = `${media.unreadable} frame(s) could not be shown`;
  if (media.video) { player.src = media.video; player.hidden = false; }
  if (index + 1 < state.rows.length) fetch(`/api/strip/${index + 1}`, { headers: headers() });  // ahead of the person
}

function renderMeta(row) {
  const meta = $("meta");
  meta.textContent = `rank ${row.rank || row.index + 1} · score ${row.score || "-"}`;
  if (row.status) {
    const status = document.createElement("span");
    status.className = `status ${row.status}`;
    status.textContent = row.status;
    meta.append(" · ", status);
  }
}

function render() {
  showProgress();
  const row = state.rows[position];
  if (!row) { say("Nothing selected."); return; }
  $("trailer-id").textContent = row.id;
  renderMeta(row);
  renderTasks(row);
  renderMedia(position);
  $("back").disabled = position === 0;
}

function chosenLabels() {
  const labels = {};
  for (const task of state.tasks) {
    labels[task.name] = Array.from(document.querySelectorAll(`fieldset[data-task="${CSS.escape(task.name)}"] input:checked`))
      .map((input) => input.value);
  }
  return labels;
}

async function answer(status) {
  if (busy || !state.rows[position]) return;
  busy = true;
  try {
    const data = await post("/api/answer", { row: position, labels: status === "skipped" ? {} : chosenLabels(), status });
    state.rows[position] = data.row;
    state.counts = data.counts;
    say(`${data.row.id}: ${status}`);
    go(position + 1);
  } catch (error) {
    say(error.message, true);
  } finally {
    busy = false;
  }
}

function go(index) {
  if (index >= state.rows.length) {
    const stay = position !== state.rows.length - 1;
    position = state.rows.length - 1;
    if (stay) render(); else { showProgress(); renderMeta(state.rows[position]); }
    say(state.counts.open ? `the end of the selection; ${state.counts.open} trailer(s) still open`
                          : "every trailer is done: Merge writes the answers into the labels file");
    return;
  }
  position = Math.max(0, index);
  render();
}

function toggle(key) {
  for (const task of state.tasks) {
    for (const value of task.labels) {
      if (keyOf[`${task.name}\u0000${value}`] !== key) continue;
      const set = document.querySelector(`fieldset[data-task="${CSS.escape(task.name)}"]`);
      const input = Array.from(set.querySelectorAll("input[type=checkbox], input[type=radio]")).find((i) => i.value === value);
      input.checked = !input.checked;
      refreshMarks(set);
      return;
    }
  }
}

async function merge() {
  $("problems").replaceChildren();
  if (!state.merge.enabled) { say(state.merge.note, true); return; }
  try {
    const data = await post("/api/merge", {});
    const before = data.already.length ? `, ${data.already.length} merged before` : "";
    say(`${data.labeled.length} trailer(s) merged into ${data.labels_file}${before}; the old file is ${data.backup}`);
  } catch (error) {
    say(error.message, true);
    for (const line of (error.data && error.data.problems) || []) {
      const item = document.createElement("li");
      item.textContent = line;
      $("problems").append(item);
    }
  }
}

document.addEventListener("keydown", (event) => {
  const typing = event.target.matches("input[type=search], input[type=text], textarea");
  if (typing) {
    if (event.key === "Escape" || event.key === "Enter") { event.target.blur(); event.preventDefault(); }
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key.toLowerCase();
  if (event.key === "Enter") { event.preventDefault(); answer("answered"); }
  else if (event.key === "Backspace") { event.preventDefault(); go(position - 1); }
  else if (event.key === "ArrowLeft") go(position - 1);
  else if (event.key === "ArrowRight") go(position + 1);
  else if (key === "s") answer("skipped");
  else if (key === "u") answer("unsure");
  else if (event.key === "/") { const s = document.querySelector(".search"); if (s) { event.preventDefault(); s.focus(); } }
  else if (KEYS.includes(key)) { event.preventDefault(); toggle(key); }
});

$("save").addEventListener("click", () => answer("answered"));
$("skip").addEventListener("click", () => answer("skipped"));
$("unsure").addEventListener("click", () => answer("unsure"));
$("back").addEventListener("click", () => go(position - 1));
$("merge").addEventListener("click", merge);
if (!state.merge.enabled) $("merge").title = state.merge.note;
render();
