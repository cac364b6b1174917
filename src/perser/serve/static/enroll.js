// The enrollment page: ask the next chosen clip, send the answer, show what the model learnt.
// Plain JavaScript against the service's endpoints (see perser.serve.enroll_page).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { listener: null, config: null, clip: null, secret: "" };

async function call(method, url, body) {
  const opt = { method, headers: {} };
  if (state.secret) opt.headers["Authorization"] = "Bearer " + state.secret;
  if (body !== undefined) {
    opt.headers["Content-Type"] = "application/json";
    opt.body = JSON.stringify(body);
  }
  const r = await fetch(url, opt);
  const doc = await r.json().catch(() => ({ detail: r.statusText }));
  if (!r.ok) throw new Error(doc.detail || r.statusText);
  return doc;
}

const enc = encodeURIComponent;

function fmt(p) {
  return (100 * p).toFixed(0) + "%";
}

function showAnswerInputs() {
  const sp = state.config.space;
  const labels = $("labels");
  labels.innerHTML = "";
  if (sp.kind === "dimensional") {
    $("ask-hint").textContent = "Move each slider to what you hear, then submit.";
    const box = $("sliders");
    box.hidden = false;
    $("submit-values").hidden = false;
    box.innerHTML = "";
    const [lo, hi] = sp.scale;
    for (const d of sp.dimensions) {
      const lab = document.createElement("label");
      lab.htmlFor = "slider-" + d;
      lab.textContent = d;
      const s = document.createElement("input");
      Object.assign(s, { type: "range", id: "slider-" + d, min: lo, max: hi, step: "any", value: (lo + hi) / 2 });
      s.dataset.dimension = d;
      box.append(lab, s);
    }
  } else {
    $("ask-hint").textContent = sp.kind === "multilabel" ? "Which emotion do you hear most?" : "Which emotion do you hear?";
    for (const c of sp.classes) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = c;
      b.dataset.label = c;
      b.className = "label-btn";
      b.addEventListener("click", () => answer({ label: sp.kind === "multilabel" ? [c] : c }));
      labels.append(b);
    }
  }
}

async function nextClip() {
  const doc = await call("GET", `/listeners/${enc(state.listener)}/next?n=1`);
  $("progress").textContent = `(${doc.answered} of ${doc.target} answered)`;
  $("finish").hidden = doc.answered < doc.target;
  if (!doc.clips.length) {
    state.clip = null;
    $("ask").hidden = true;
    $("finish").hidden = false;
    return;
  }
  state.clip = doc.clips[0];
  $("clip-no").textContent = String(doc.answered + 1);
  const audio = $("clip-audio");
  audio.src = state.clip.audio;
  audio.dataset.clipId = state.clip.clip_id;
  audio.play().catch(() => {}); // autoplay may be refused; the controls stay
}

function showState(doc) {
  $("status").hidden = false;
  if (doc.closest && doc.closest.length) {
    $("closest").textContent = doc.closest[0].annotator;
    $("confidence").textContent = fmt(doc.confidence);
    $("closest-list").innerHTML = doc.closest
      .map((c) => `<li>${c.annotator.replace(/</g, "&lt;")}: ${fmt(c.probability)}</li>`).join("");
  } else {
    $("closest").textContent = "(this method keeps no seen listeners)";
    $("confidence").textContent = "-";
  }
  $("profile-line").textContent = `${doc.answered} answers; profile: ${JSON.stringify(doc.profile)}`;
}

async function answer(value) {
  if (!state.clip) return;
  $("ask-error").textContent = "";
  for (const b of document.querySelectorAll("#labels button, #submit-values")) b.disabled = true;
  try {
    const doc = await call("POST", `/listeners/${enc(state.listener)}/answers`, { clip_id: state.clip.clip_id, ...value });
    showState(doc);
    await nextClip();
  } catch (e) {
    $("ask-error").textContent = e.message;
  } finally {
    for (const b of document.querySelectorAll("#labels button, #submit-values")) b.disabled = false;
  }
}

async function start() {
  $("login-error").textContent = "";
  const key = $("key").value.trim();
  if (!key) {
    $("login-error").textContent = "Enter your listener key.";
    return;
  }
  state.listener = key;
  state.secret = $("secret").value.trim();
  const url = new URL(window.location);
  url.searchParams.set("listener", key);
  window.history.replaceState(null, "", url);
  try {
    state.config = await call("GET", "/page-config");
    showAnswerInputs();
    $("login").hidden = true;
    $("ask").hidden = false;
    const pick = $("pick");
    pick.innerHTML = state.config.clips.map((c) => `<option value="${c}">${c}</option>`).join("");
    try {
      showState(await call("GET", `/listeners/${enc(key)}/enrollment`));
    } catch (e) { /* nothing answered yet */ }
    await nextClip();
  } catch (e) {
    $("login-error").textContent = e.message;
  }
}

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result).split(",")[1]);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(file);
  });
}

function describe(pred) {
  if (pred.values) return Object.entries(pred.values).map(([d, v]) => `${d} ${v.toFixed(2)}`).join(", ");
  return Array.isArray(pred.label) ? pred.label.join("+") || "(none)" : pred.label;
}

async function compare() {
  $("compare-error").textContent = "";
  try {
    const file = $("upload").files[0];
    const body = file ? { audio: await readBase64(file) } : { clip_id: $("pick").value };
    const doc = await call("POST", `/listeners/${enc(state.listener)}/compare`, body);
    $("personal").textContent = describe(doc.personal);
    $("consensus").textContent = describe(doc.consensus);
    const rows = [];
    const keys = doc.personal.proba ? Object.keys(doc.personal.proba) : Object.keys(doc.personal.values);
    for (const k of keys) {
      const a = doc.personal.proba ? fmt(doc.personal.proba[k]) : doc.personal.values[k].toFixed(2);
      const b = doc.consensus.proba ? fmt(doc.consensus.proba[k]) : doc.consensus.values[k].toFixed(2);
      rows.push(`<tr><th>${k}</th><td>${a}</td><td>${b}</td></tr>`);
    }
    $("compare-body").innerHTML = rows.join("");
    $("compare-table").hidden = false;
  } catch (e) {
    $("compare-error").textContent = e.message;
  }
}

window.addEventListener("DOMContentLoaded", () => {
  $("start").addEventListener("click", start);
  $("key").addEventListener("keydown", (e) => { if (e.key === "Enter") start(); });
  $("submit-values").addEventListener("click", () => {
    const values = {};
    for (const s of document.querySelectorAll("#sliders input")) values[s.dataset.dimension] = Number(s.value);
    answer({ values });
  });
  $("finish").addEventListener("click", () => { $("compare").hidden = false; });
  $("compare-btn").addEventListener("click", compare);
  const given = new URL(window.location).searchParams.get("listener");
  if (given) {
    $("key").value = given;
    start();
  }
});
