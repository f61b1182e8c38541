// knowbase web page: ask with sources at once and the answer streaming, citations that open
// their passage, feedback, uploads with progress. Every piece of document or model text is
// inserted with textContent / createTextNode: it is never parsed as HTML.
"use strict";

const TEXT = {
  en: { kb: "Knowledge base", key: "API key", question: "Ask a question", ask: "Ask", answer: "Answer",
        sources: "Sources", upload: "Upload documents", send: "Upload", comment: "Comment (optional)",
        retrieving: "Searching…", answering: "Answering…", done: "Done", revised: "Checked answer (revised):",
        abstained: "Not in the knowledge base.", thanks: "Thank you.", ingesting: "Ingesting…",
        uploaded: "Ingested", failed: "Failed", up: "Helpful", down: "Not helpful", operator: "Operator view", refresh: "Refresh",
        perKb: "Per knowledge base (last 24 h, hourly)", perModel: "Per model", lang: "中文" },
  zh: { kb: "知识库", key: "API 密钥", question: "请输入问题", ask: "提问", answer: "回答", sources: "来源",
        upload: "上传文档", send: "上传", comment: "评论（可选）", retrieving: "检索中…", answering: "生成回答中…",
        done: "完成", revised: "核对后的回答（已修改）：", abstained: "知识库中没有相关内容。", thanks: "谢谢反馈。",
        ingesting: "导入中…", uploaded: "已导入", failed: "失败", up: "有帮助", down: "没有帮助",
        operator: "运维视图", refresh: "刷新", perKb: "按知识库（最近 24 小时，每小时）", perModel: "按模型", lang: "English" },
};
let lang = (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
const $ = (id) => document.getElementById(id);
const t = (name) => TEXT[lang][name] || name;
let traceId = null;
let passages = [];

function applyLanguage() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
  $("lang").textContent = t("lang");
}

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const key = $("key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function setStatus(el, text, isError) {
  el.textContent = text;
  el.classList.toggle("error", Boolean(isError));
}

async function errorText(resp) {
  try { const body = await resp.json(); return body.error && body.error.message ? body.error.message : resp.statusText; }
  catch (e) { return resp.status + " " + resp.statusText; }
}

function label(p) {
  let out = p.path.split("/").pop();
  if (p.section && p.section.length) out += " § " + p.section.join(" > ");
  if (p.page) out += " (p. " + p.page + ")";
  return out;
}

async function loadKbs() {
  const resp = await fetch("/api/kbs", { headers: headers() });
  const select = $("kb");
  if (!resp.ok) { setStatus($("status"), await errorText(resp), true); return; }
  const body = await resp.json();
  const current = select.value;
  select.replaceChildren();
  for (const kb of body.data) {
    const opt = document.createElement("option");
    opt.value = kb.name;
    opt.textContent = kb.name + " (" + kb.documents + ")";
    select.appendChild(opt);
  }
  if (current) select.value = current;
}

function renderSources(list, cited) {
  const ol = $("sources");
  ol.replaceChildren();
  list.forEach((p) => {
    const li = document.createElement("li");
    li.value = p.n;
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = "cite";
    btn.textContent = "[" + p.n + "]";
    btn.addEventListener("click", () => showPassage(p.n));
    li.appendChild(btn);
    li.appendChild(document.createTextNode(" " + label(p)));
    if (cited && cited.has(p.n)) li.classList.add("cited");
    ol.appendChild(li);
  });
}

// The answer text with its [n] markers as buttons; everything else stays plain text.
function renderAnswer(text) {
  const box = $("answer");
  box.replaceChildren();
  const re = /\[(\d+)\]/g;
  let last = 0;
  let m;
  while ((m = re.exec(text)) !== null) {
    box.appendChild(document.createTextNode(text.slice(last, m.index)));
    const n = Number(m[1]);
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = "cite";
    btn.textContent = m[0];
    btn.addEventListener("click", () => showPassage(n));
    box.appendChild(btn);
    last = re.lastIndex;
  }
  box.appendChild(document.createTextNode(text.slice(last)));
}

// The passage, with the part the answer relied on highlighted (a <mark> holding text).
function showPassage(n) {
  const p = passages.find((x) => x.n === n);
  if (!p) return;
  $("passage-panel").hidden = false;
  $("passage-title").textContent = "[" + n + "] " + label(p);
  const pre = $("passage");
  pre.replaceChildren();
  const span = p.highlight;  // character offsets in the passage text
  if (span && span[0] >= 0 && span[1] <= p.text.length && span[1] > span[0]) {
    const a = span[0], b = span[1];
    pre.appendChild(document.createTextNode(p.text.slice(0, a)));
    const mark = document.createElement("mark");
    mark.textContent = p.text.slice(a, b);
    pre.appendChild(mark);
    pre.appendChild(document.createTextNode(p.text.slice(b)));
  } else {
    pre.textContent = p.text;
  }
}

function parseEvents(buffer, onEvent) {
  let idx;
  while ((idx = buffer.indexOf("\n\n")) >= 0) {
    const block = buffer.slice(0, idx);
    buffer = buffer.slice(idx + 2);
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) event = line.slice(7);
      else if (line.startsWith("data: ")) data.push(line.slice(6));
    }
    if (data.length) onEvent(event, JSON.parse(data.join("\n")));
  }
  return buffer;
}

async function ask(question) {
  const kb = $("kb").value;
  if (!kb) return;
  traceId = null;
  passages = [];
  $("feedback").hidden = true;
  $("passage-panel").hidden = true;
  $("answer").replaceChildren();
  $("sources").replaceChildren();
  setStatus($("status"), t("retrieving"));
  const resp = await fetch("/api/kbs/" + encodeURIComponent(kb) + "/ask", {
    method: "POST", headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify({ question: question, stream: true }),
  });
  if (!resp.ok) { setStatus($("status"), await errorText(resp), true); return; }
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let streamed = "";
  const onEvent = (event, data) => {
    if (event === "sources") {
      passages = data.passages;
      renderSources(passages);
      setStatus($("status"), t("answering"));
    } else if (event === "delta") {
      streamed += data.text;
      renderAnswer(streamed);
    } else if (event === "answer") {
      traceId = data.trace_id;
      for (const c of data.claims || []) {  // the sentence of the passage that supports a claim
        const e = c.evidence;
        const p = e ? passages.find((x) => x.n === e.n) : null;
        if (p && !p.highlight) p.highlight = [e.chunk_start, e.chunk_end];
      }
      renderAnswer(data.answer);
      renderSources(passages, new Set(data.citations.map((c) => c.n)));
      setStatus($("status"), data.abstained ? t("abstained") : (data.revised ? t("revised") : t("done")));
      $("feedback").hidden = !traceId;
      setStatus($("feedback-status"), "");
    } else if (event === "error") {
      setStatus($("status"), data.error.message, true);
    }
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer = parseEvents(buffer + decoder.decode(value, { stream: true }), onEvent);
  }
}

async function sendFeedback(rating) {
  if (!traceId) return;
  const resp = await fetch("/api/feedback", {
    method: "POST", headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify({ trace_id: traceId, rating: rating, comment: $("comment").value, kb: $("kb").value }),
  });
  setStatus($("feedback-status"), resp.ok ? t("thanks") : await errorText(resp), !resp.ok);
}

function upload(files) {
  const kb = $("kb").value;
  if (!kb || !files.length) return;
  const form = new FormData();
  for (const f of files) form.append("files", f, f.name);
  const xhr = new XMLHttpRequest();
  const bar = $("upload-progress");
  bar.hidden = false;
  bar.value = 0;
  xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) bar.value = (50 * e.loaded) / e.total; });
  xhr.addEventListener("load", () => {
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
    if (xhr.status !== 202 || !body) {
      setStatus($("upload-status"), body && body.error ? body.error.message : String(xhr.status), true);
      return;
    }
    pollJob(body.id);
  });
  xhr.open("POST", "/api/kbs/" + encodeURIComponent(kb) + "/documents");
  const h = headers();
  for (const k of Object.keys(h)) xhr.setRequestHeader(k, h[k]);
  xhr.send(form);
}

async function pollJob(id) {
  setStatus($("upload-status"), t("ingesting"));
  for (;;) {
    const resp = await fetch("/api/jobs/" + encodeURIComponent(id), { headers: headers() });
    if (!resp.ok) { setStatus($("upload-status"), await errorText(resp), true); return; }
    const job = await resp.json();
    const p = job.progress;
    if (p && p.files_total) $("upload-progress").value = 50 + (50 * p.files_done) / p.files_total;
    if (job.status === "done" || job.status === "failed") {
      $("upload-progress").value = 100;
      const names = job.files.join(", ");
      const failed = job.report ? job.report.failed.map((f) => f.path.split("/").pop() + ": " + f.reason) : [];
      setStatus($("upload-status"), (job.status === "done" ? t("uploaded") : t("failed")) + ": " + names +
                (failed.length ? " — " + failed.join("; ") : "") + (job.error ? " — " + job.error : ""),
                job.status !== "done");
      loadKbs();
      return;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}

// --- operator view: tables and small SVG charts (bars: count, red: errors/abstentions/down
// votes; line: p95 latency), every label set as text
function table(el, columns, rows) {
  el.replaceChildren();
  const head = document.createElement("tr");
  for (const [, title] of columns) { const th = document.createElement("th"); th.textContent = title; head.appendChild(th); }
  el.appendChild(head);
  for (const row of rows) {
    const tr = document.createElement("tr");
    for (const [key] of columns) {
      const td = document.createElement("td");
      const v = row[key];
      td.textContent = key === "start" ? new Date(v * 1000).toLocaleString() : (v === null || v === undefined ? "-" :
        (typeof v === "number" && !Number.isInteger(v) ? v.toFixed(0) : String(v)));
      tr.appendChild(td);
    }
    el.appendChild(tr);
  }
}

function chart(el, rows, countKey, badKey) {
  const NS = "http://www.w3.org/2000/svg";
  const w = 600, h = 120;
  const byStart = new Map();
  for (const r of rows) {
    const b = byStart.get(r.start) || { count: 0, bad: 0, p95: 0 };
    b.count += r[countKey]; b.bad += r[badKey]; b.p95 = Math.max(b.p95, r.p95_ms || 0);
    byStart.set(r.start, b);
  }
  const starts = [...byStart.keys()].sort((a, b) => a - b);
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", h); svg.setAttribute("role", "img");
  const maxCount = Math.max(1, ...starts.map((s) => byStart.get(s).count));
  const maxLat = Math.max(1, ...starts.map((s) => byStart.get(s).p95));
  const step = w / Math.max(1, starts.length);
  const points = [];
  starts.forEach((s, i) => {
    const b = byStart.get(s);
    for (const [cls, value] of [["calls", b.count], ["bad", b.bad]]) {
      const rect = document.createElementNS(NS, "rect");
      const bh = (h - 10) * value / maxCount;
      rect.setAttribute("x", i * step + (cls === "bad" ? step * 0.45 : 2)); rect.setAttribute("width", step * 0.4);
      rect.setAttribute("y", h - bh); rect.setAttribute("height", bh); rect.setAttribute("class", cls);
      svg.appendChild(rect);
    }
    points.push((i * step + step / 2) + "," + (h - (h - 10) * b.p95 / maxLat));
  });
  const line = document.createElementNS(NS, "polyline");
  line.setAttribute("points", points.join(" ")); line.setAttribute("class", "lat");
  svg.appendChild(line);
  el.replaceChildren(svg);
}

async function loadMetrics() {
  const resp = await fetch("/api/metrics?hours=24&bucket_minutes=60", { headers: headers() });
  if (!resp.ok) { setStatus($("metrics-status"), await errorText(resp), true); return; }
  const m = await resp.json();
  setStatus($("metrics-status"), "");
  chart($("kb-chart"), m.kbs, "asks", "abstained");
  table($("kb-metrics"), [["start", "hour"], ["kb", "knowledge base"], ["asks", "asks"], ["abstained", "abstained"],
    ["errors", "errors"], ["p50_ms", "p50 ms"], ["p95_ms", "p95 ms"], ["feedback_up", "up"], ["feedback_down", "down"]],
    m.kbs);
  chart($("model-chart"), m.models, "calls", "errors");
  table($("model-metrics"), [["start", "hour"], ["model", "model"], ["calls", "calls"], ["errors", "errors"],
    ["p50_ms", "p50 ms"], ["p95_ms", "p95 ms"], ["prompt_tokens", "prompt tokens"],
    ["completion_tokens", "completion tokens"]], m.models);
}

document.addEventListener("DOMContentLoaded", () => {
  applyLanguage();
  $("key").value = sessionStorage.getItem("knowbase-key") || "";
  $("key").addEventListener("change", () => { sessionStorage.setItem("knowbase-key", $("key").value.trim()); loadKbs(); });
  $("lang").addEventListener("click", () => { lang = lang === "en" ? "zh" : "en"; applyLanguage(); });
  $("ask-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = $("question").value.trim();
    if (q) ask(q).catch((err) => setStatus($("status"), String(err), true));
  });
  $("up").addEventListener("click", () => sendFeedback("up"));
  $("down").addEventListener("click", () => sendFeedback("down"));
  $("upload-form").addEventListener("submit", (e) => { e.preventDefault(); upload($("files").files); });
  $("load-metrics").addEventListener("click", () => loadMetrics().catch((err) => setStatus($("metrics-status"), String(err), true)));
  loadKbs();
});
