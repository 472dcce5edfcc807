// emoscope web page: upload a photo or video, or stream the camera over a WebSocket.
// The visual language of every report, chart and annotated video (emoscope/presentation.py, served
// as /presentation.js): one colour per expression, for valence, for unreadable faces and for persons.
const { valenceMark: VALENCE_MARK, unreadable: UNREADABLE_COLOR, expression: CLASS_COLORS,
  persons: TRACK_COLORS } = window.PRESENTATION;
const $ = (id) => document.getElementById(id);
const mmss = (t) => `${Math.floor(t / 60)}:${String(Math.floor(t % 60)).padStart(2, "0")}`;
const mmssTenths = (t) => `${mmss(t)}.${Math.floor((t * 10) % 10)}`;

document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => {
  document.querySelectorAll("nav button, .tab").forEach((e) => e.classList.remove("active"));
  b.classList.add("active");
  $(b.dataset.tab).classList.add("active");
}));

// The served model's valence thresholds (a face read with its blendshapes has its own), so that
// a result can say where "neutral" ends.
const modelReady = fetch("/v1/model").then((r) => (r.ok ? r.json() : null)).catch(() => null);

function valenceRule(model, f) {
  if (!model) return "";
  const fused = f.expression_from === "image+blendshapes" && model.expression_from_blendshapes;
  const t = fused ? model.expression_from_blendshapes.valence_thresholds : model.valence.thresholds;
  return `; neutral from \u2212${t.negative.toFixed(2)} to +${t.positive.toFixed(2)}`;
}

// Boxes coloured by expression; each tagged with its number in the list below (photos) or its
// person (video and camera).
function drawFaces(ctx, faces, scale = 1) {
  ctx.lineWidth = 3;
  ctx.font = "16px system-ui";
  faces.forEach((f, i) => {
    const [x, y, w, h] = f.box.map((v) => v * scale);
    const readable = f.readable !== false;  // the fit flag: an unreadable face gets no expression
    const color = readable ? CLASS_COLORS[f.label] || "#fff" : UNREADABLE_COLOR;  // the box says the expression
    ctx.strokeStyle = color;
    ctx.strokeRect(x, y, w, h);
    const tag = (f.track_id ? "" : `${i + 1}: `)
      + (readable ? `${f.label} ${Math.round(f.probs[f.label] * 100)}% ${VALENCE_MARK[f.valence] || ""}` : "unreadable")
      + (f.track_id ? ` #${f.track_id}` : "");
    const tw = ctx.measureText(tag).width + 8;
    ctx.fillStyle = color;
    ctx.fillRect(x, Math.max(0, y - 22), tw, 22);
    ctx.fillStyle = "#111";
    ctx.fillText(tag, x + 4, Math.max(16, y - 6));
  });
}

function faceList(faces, model = null) {
  if (!faces.length) return "<p>No faces found.</p>";
  return faces.map((f, i) => {
    if (f.readable === false) {
      return `<div class="face"><b>Face ${i + 1}</b>: unreadable (${f.unreadable}); no expression is read from it</div>`;
    }
    const bars = Object.entries(f.probs).sort((a, b) => b[1] - a[1]).map(([k, p]) =>
      `<div class="prob"><span>${k}</span><span class="track"><span class="bar" style="width:${(p * 100).toFixed(1)}%;` +
      `background:${CLASS_COLORS[k] || "#4c78a8"}"></span></span><span>${(p * 100).toFixed(1)}%</span></div>`).join("");
    return `<div class="face"><b>Face ${i + 1}</b>: ${f.label}, ${f.valence} valence (score ` +
      `${f.valence_score.toFixed(2)} on \u22121 to +1${valenceRule(model, f)})${bars}</div>`;
  }).join("");
}

// POST a form, showing the upload's progress in `ui` ({status, progress} elements); the JSON, or
// null after showing the error.
function post(url, body, ui) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) showProgress(ui, "Uploading", e.loaded / e.total); };
    const fail = (message) => { ui.status.textContent = `Error: ${message}`; ui.progress.hidden = true; resolve(null); };
    xhr.onload = () => {
      const data = xhr.response || { error: `the server answered ${xhr.status}` };
      if (xhr.status >= 400) fail(data.error); else resolve(data);
    };
    xhr.onerror = () => fail("the server could not be reached.");
    xhr.send(body);
  });
}

function upload(url, file) {
  const body = new FormData();
  body.append("file", file);
  return post(url, body, UPLOAD_UI);
}

function showProgress(ui, what, fraction) {
  ui.progress.hidden = false;
  ui.progress.value = fraction;
  ui.status.textContent = `${what}… ${Math.round(fraction * 100)}%`;
}
const UPLOAD_UI = { status: $("upload-status"), progress: $("progress") };
const hideProgress = () => { $("progress").hidden = true; };

async function analyzePhoto(file) {
  $("upload-status").textContent = "Analysing…";
  const data = await upload("/v1/analyze", file);
  if (!data) return;
  clearResults();
  $("photo").hidden = false;
  const img = await createImageBitmap(file, { imageOrientation: "from-image" });
  const canvas = $("photo");
  const scale = Math.min(1, 640 / img.width);
  canvas.width = img.width * scale; canvas.height = img.height * scale;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
  drawFaces(ctx, data.faces, canvas.width / data.width);
  $("faces").innerHTML = faceList(data.faces, await modelReady);
  hideProgress();
  $("upload-status").textContent = `${data.faces.length} face(s) in ${data.elapsed_ms} ms.`;
  $("upload-status").dataset.faces = data.faces.length;
}

// One colour per person, shared by the chart lines, the legend and the thumbnails' frames.
function trackColor(track, order) {
  const i = Math.max(0, order.indexOf(String(track)));
  return i < TRACK_COLORS.length ? TRACK_COLORS[i] : `hsl(${(i * 137.508) % 360}, 45%, 30%)`;
}

// A chart frame: title, axes with ticks (x in m:ss) and axis titles. Returns the mapping functions.
function axes(canvas, { title, t0, t1, yMin, yMax, yTicks, yLabel }) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 52, R = 12, T = 26, B = 38;
  ctx.clearRect(0, 0, W, H);
  const X = (t) => L + (W - L - R) * (t - t0) / Math.max(t1 - t0, 1e-6);
  const Y = (v) => H - B - (H - T - B) * (v - yMin) / (yMax - yMin);
  ctx.font = "13px system-ui"; ctx.fillStyle = "#222"; ctx.fillText(title, L, 16);
  ctx.strokeStyle = "#888"; ctx.lineWidth = 1;
  ctx.beginPath(); ctx.moveTo(L, T); ctx.lineTo(L, H - B); ctx.lineTo(W - R, H - B); ctx.stroke();
  ctx.font = "11px system-ui"; ctx.fillStyle = "#555";
  for (const v of yTicks) {
    ctx.textAlign = "right"; ctx.fillText(String(v), L - 5, Y(v) + 4); ctx.textAlign = "left";
    ctx.strokeStyle = "#eee"; ctx.beginPath(); ctx.moveTo(L, Y(v)); ctx.lineTo(W - R, Y(v)); ctx.stroke();
  }
  const span = t1 - t0, step = [1, 2, 5, 10, 15, 30, 60, 120, 300].find((s) => span / s <= 10) || 600;
  for (let t = Math.ceil(t0 / step) * step; t <= t1 + 1e-9; t += step) {
    ctx.fillText(mmss(t), X(t) - 10, H - B + 14);
  }
  ctx.fillText("time (m:ss)", (W - L) / 2, H - 6);
  ctx.save(); ctx.translate(11, (H - B + T) / 2); ctx.rotate(-Math.PI / 2); ctx.textAlign = "center";
  ctx.fillText(yLabel, 0, 0); ctx.restore();
  return { ctx, X, Y };
}

function legend(el, items) {
  el.innerHTML = items.map(([name, color]) => `<span><i style="background:${color}"></i>${name}</span>`).join("");
}

function lineChart(canvas, series, { order = Object.keys(series), title = "Valence per person", t0, t1 } = {}) {
  const all = Object.values(series).flat();
  if (!all.length) return null;
  t0 = t0 ?? Math.min(...all.map((p) => p[0]));
  t1 = t1 ?? Math.max(...all.map((p) => p[0]), t0 + 1);
  const { ctx, X, Y } = axes(canvas, { title, t0, t1, yMin: -1, yMax: 1, yTicks: [-1, -0.5, 0, 0.5, 1],
    yLabel: "valence (-1 to +1)" });
  canvas.dataset.t0 = t0; canvas.dataset.t1 = t1;
  Object.entries(series).forEach(([track, pts]) => {
    ctx.strokeStyle = trackColor(track, order); ctx.lineWidth = 2; ctx.beginPath();
    pts.forEach(([t, v], j) => (j ? ctx.lineTo(X(t), Y(v)) : ctx.moveTo(X(t), Y(v))));
    ctx.stroke();
  });
  return X;
}

// The expression view: one row per person, each analysed frame coloured by its expression.
function expressionChart(canvas, rows, order, t0, t1, frameStep) {
  if (!rows.length) return;
  canvas.height = Math.max(120, 64 + 22 * order.length);
  const { ctx, X } = axes(canvas, { title: "Expression per person", t0, t1, yMin: 0, yMax: 1, yTicks: [],
    yLabel: "person" });
  canvas.dataset.t0 = t0; canvas.dataset.t1 = t1;
  const step = Math.max(1, X(t0 + frameStep) - X(t0));  // one analysed frame wide: never past the axis's end
  ctx.font = "11px system-ui";
  order.forEach((track, i) => {
    const y = 30 + 22 * i;
    ctx.fillStyle = trackColor(track, order); ctx.fillText(`#${track}`, 20, y + 13);
    for (const r of rows) if (String(r.track) === track) {
      ctx.fillStyle = r.readable === false ? UNREADABLE_COLOR : CLASS_COLORS[r.label] || "#888";
      ctx.fillRect(X(r.time), y, Math.min(step, X(t1) - X(r.time)), 16);
    }
  });
}

async function analyzeVideo(file) {
  clearResults();
  const job = await upload("/v1/videos", file);
  if (!job) return;
  for (;;) {
    const st = await (await fetch(job.status_url)).json();
    if (st.status === "failed") { $("upload-status").textContent = `Failed: ${st.error}`; hideProgress(); return; }
    if (st.status === "done") { showVideo(st, job, file); return; }
    if (st.status === "queued") $("upload-status").textContent = "Waiting for an analyzer…";
    else showProgress(UPLOAD_UI, "Analysing", st.progress || 0);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function clearResults() {
  const photo = $("photo");
  photo.getContext("2d").clearRect(0, 0, photo.width, photo.height);
  photo.hidden = true;
  $("faces").innerHTML = "";
  $("video-results").hidden = true;
  $("summary").innerHTML = "";
}

// a moment worth naming only where the person's valence really went that way
const peakAt = (key, value, sign) => (s) => (sign * s[value] > 0.15 ? mmssTenths(s[key]) : "–");
const SUMMARY_COLUMNS = [
  ["frames", "frames", (v) => v], ["unreadable_frames", "unreadable", (v) => v],
  ["first_s", "first seen", mmssTenths], ["last_s", "last seen", mmssTenths],
  ["dominant", "main expression", (v) => v], ["mean_valence", "mean valence", (v) => v.toFixed(2)],
  [null, "most positive at", peakAt("peak_positive_s", "peak_positive", 1)],
  [null, "most negative at", peakAt("peak_negative_s", "peak_negative", -1)]];

function showVideo(st, job, file) {
  clearResults();
  hideProgress();
  const order = st.summary.map((s) => String(s.track));
  const series = {}, rows = [];
  for (const r of st.timeline) if (!r.short_track) {
    if (r.readable !== false) (series[r.track] ||= []).push([r.time, r.valence_score]);
    rows.push(r);
  }
  const times = [...new Set(st.timeline.map((r) => r.time))].sort((a, b) => a - b);
  const frameStep = times.length > 1 ? (times[times.length - 1] - times[0]) / (times.length - 1) : 1 / 30;
  const t0 = 0, t1 = Math.max(...times, 1);
  $("video-results").hidden = false;
  lineChart($("video-chart"), series, { order, t0, t1 });
  legend($("video-legend"), order.map((t) => [`person #${t}`, trackColor(t, order)]));
  expressionChart($("expression-chart"), rows, order, t0, t1, frameStep);
  playWithBoxes(file, st.timeline.filter((r) => !r.short_track), frameStep);
  legend($("expression-legend"), Object.entries(CLASS_COLORS).filter(([k]) => k !== "contempt"));
  const face = (s) => s.thumbnail
    ? `<img class="person" alt="person ${s.track}" src="${s.thumbnail}" style="border-color:${trackColor(s.track, order)}">` : "";
  $("summary").innerHTML = `<tr><th>person</th>${SUMMARY_COLUMNS.map(([, name]) => `<th>${name}</th>`).join("")}</tr>` +
    st.summary.map((s) => `<tr><td>${face(s)}#${s.track}</td>` +
      SUMMARY_COLUMNS.map(([k, , fmt]) => {
        const v = k === null ? fmt(s) : s[k] === null || s[k] === undefined ? "–" : fmt(s[k]);
        return `<td>${v}</td>`;
      }).join("") + "</tr>").join("");
  $("csv").href = `${job.status_url}/timeline.csv`;
  const short = new Set(st.timeline.filter((r) => r.short_track).map((r) => r.track)).size;
  $("upload-status").textContent = `${st.summary.length} ${st.summary.length === 1 ? "person" : "persons"} ` +
    `(numbered as they were tracked${short ? `; ${short} flickers of a few frames left out` : ""}), ` +
    `${st.timeline.length} face rows.` + (st.warnings.length ? ` Warning: ${st.warnings.join("; ")}` : "");
  $("upload-status").dataset.people = st.summary.length;
}

// The uploaded video plays here (from the file on this computer: nothing is kept on the server),
// with the boxes of the nearest analysed frame drawn over it and a cursor on both charts.
function playWithBoxes(file, rows, frameStep) {
  const player = $("player"), overlay = $("player-overlay");
  if (player.src) URL.revokeObjectURL(player.src);
  player.src = URL.createObjectURL(file);
  const byTime = new Map();
  for (const r of rows) (byTime.get(r.time) || byTime.set(r.time, []).get(r.time)).push(r);
  const times = [...byTime.keys()].sort((a, b) => a - b);
  const draw = () => {
    overlay.width = player.videoWidth; overlay.height = player.videoHeight;
    const t = player.currentTime;
    let i = times.findIndex((x) => x > t) - 1;
    if (i < 0) i = t >= (times[times.length - 1] ?? Infinity) ? times.length - 1 : -1;
    const near = i >= 0 && Math.abs(times[i] - t) <= 2 * frameStep ? byTime.get(times[i]) : [];
    drawFaces(overlay.getContext("2d"), near.map((r) => ({ box: [r.x, r.y, r.w, r.h], label: r.label,
      probs: { [r.label]: r[r.label] }, valence: r.valence, track_id: r.track, readable: r.readable })));
    for (const canvas of [$("video-chart"), $("expression-chart")]) {
      const cursor = canvas.parentElement.querySelector(".cursor");
      const t0 = Number(canvas.dataset.t0), t1 = Number(canvas.dataset.t1);
      const L = 52, R = 12, scale = canvas.clientWidth / canvas.width;
      cursor.style.left = `${(L + (canvas.width - L - R) * (t - t0) / Math.max(t1 - t0, 1e-6)) * scale}px`;
      cursor.style.display = "block";
    }
  };
  player.ontimeupdate = draw;
  player.onseeked = draw;
  player.onloadeddata = draw;
  for (const canvas of [$("video-chart"), $("expression-chart")]) {
    canvas.onclick = (e) => {  // click a moment to see it
      const t0 = Number(canvas.dataset.t0), t1 = Number(canvas.dataset.t1), L = 52, R = 12;
      const x = e.offsetX * canvas.width / canvas.clientWidth;
      player.currentTime = Math.max(0, t0 + (x - L) / (canvas.width - L - R) * (t1 - t0));
    };
  }
}

$("file").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (!file) return;
  (file.type.startsWith("video/") ? analyzeVideo : analyzePhoto)(file).catch((err) => {
    $("upload-status").textContent = `Error: ${err}`;
  });
});

// Ad test: the ad, the recordings and the optional groups/offsets files as one upload; the
// service runs the campaign as a job, then the report opens here.
$("c-run").addEventListener("click", async () => {
  const ui = { status: $("c-status"), progress: $("c-progress") };
  const recordings = $("c-recordings").files;
  if (!recordings.length) { ui.status.textContent = "Choose the viewers' recordings first."; return; }
  const body = new FormData();
  for (const f of recordings) body.append("recordings", f);
  for (const [field, id] of [["stimulus", "c-stimulus"], ["groups", "c-groups"], ["offsets", "c-offsets"]]) {
    if ($(id).files[0]) body.append(field, $(id).files[0]);
  }
  body.append("title", $("c-title").value);
  $("c-run").disabled = true;
  $("c-report").hidden = true; $("c-links").innerHTML = "";
  try {
    const job = await post("/v1/campaigns", body, ui);
    if (!job) return;
    for (;;) {
      const st = await (await fetch(job.status_url)).json();
      if (st.status === "failed") { ui.status.textContent = `Failed: ${st.error}`; ui.progress.hidden = true; return; }
      if (st.status === "done") {
        ui.progress.hidden = true;
        ui.status.textContent = `Done: ${st.recordings.length} recording(s).`;
        ui.status.dataset.done = "1";
        const base = `${job.status_url}/files/`;
        $("c-links").innerHTML = `<a href="${st.report_url}" target="_blank">Open the report in a new tab</a>` +
          st.files.filter((f) => /\.(pdf|csv)$/.test(f)).map((f) => ` · <a href="${base}${f}" download>${f}</a>`).join("");
        $("c-report").src = st.report_url;
        $("c-report").hidden = false;
        return;
      }
      if (st.status === "queued") ui.status.textContent = "Waiting for an analyzer…";
      else showProgress(ui, "Analysing the recordings", st.progress || 0);
      await new Promise((r) => setTimeout(r, 400));
    }
  } finally {
    $("c-run").disabled = false;
  }
});

// Live mode: one frame in flight at a time, so the page never queues more than the server can do.
// If the socket closes without the user stopping, it reconnects (1 s, 2 s, 4 s ... up to 15 s).
let live = null;
const LIVE_FORGET_S = 10;  // seconds after which a person no longer seen leaves the live chart

function cameraError(err) {
  if (err && (err.name === "NotFoundError" || err.name === "OverconstrainedError"))
    return "No camera was found. Connect one, or use a photo or a video instead.";
  if (err && (err.name === "NotAllowedError" || err.name === "SecurityError"))
    return "The browser did not allow the camera. Allow it in the address bar, then start again.";
  if (err && err.name === "NotReadableError") return "The camera is in use by another program.";
  return "The camera could not be started.";
}

function connect(state) {
  const status = $("live-status");
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/stream`);
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  let busy = false;
  const send = () => {
    if (live !== state || busy || ws.readyState !== 1) return;
    busy = true;
    state.grab.getContext("2d").drawImage(state.video, 0, 0);
    state.grab.toBlob((b) => b && b.arrayBuffer().then((buf) => ws.readyState === 1 && ws.send(buf)), "image/jpeg", 0.7);
  };
  ws.onopen = () => { state.retry = 0; send(); };
  ws.onmessage = (ev) => {
    busy = false;
    if (live !== state) return;  // an answer that arrives after Stop draws nothing
    const msg = JSON.parse(ev.data);
    const overlay = $("overlay"), ctx = overlay.getContext("2d");
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    if (msg.faces) {
      drawFaces(ctx, msg.faces, overlay.width / msg.width);
      const t = (performance.now() - state.t0) / 1000;
      for (const f of msg.faces) (state.series[f.track_id] ||= []).push([t, f.valence_score]);
      for (const k in state.series) {
        if (state.series[k].length > 300) state.series[k].shift();
        // a person not seen for LIVE_FORGET_S leaves the chart and the legend (a looping clip or a
        // crowd would otherwise grow them without end)
        if (t - state.series[k][state.series[k].length - 1][0] > LIVE_FORGET_S) delete state.series[k];
      }
      const order = Object.keys(state.series);
      lineChart($("live-chart"), state.series, { order, title: "Valence per person, live" });
      legend($("live-legend"), order.map((k) => [`person #${k}`, trackColor(k, order)]));
    }
    state.frames += 1;
    const now = performance.now();
    state.fps = 0.8 * state.fps + 0.2 * (1000 / (now - state.last)); state.last = now;
    status.textContent = `${msg.faces ? msg.faces.length : 0} face(s), ${state.fps.toFixed(1)} FPS` +
      (msg.error ? ` (${msg.error})` : "");
    status.dataset.faces = msg.faces ? msg.faces.length : 0;
    status.dataset.frames = state.frames;
    status.dataset.fps = state.fps.toFixed(1);
    send();
  };
  ws.onclose = () => {
    if (live !== state) return;  // stopped by the user
    const wait = Math.min(15, 2 ** state.retry++);
    status.textContent = `Connection lost; reconnecting in ${wait} s…`;
    status.dataset.reconnects = (Number(status.dataset.reconnects) || 0) + 1;
    setTimeout(() => { if (live === state) connect(state); }, wait * 1000);
  };
}

$("start").addEventListener("click", async () => {
  const video = $("cam"), overlay = $("overlay"), status = $("live-status");
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (err) {
    status.textContent = cameraError(err);
    status.dataset.error = err && err.name ? err.name : "error";
    return;
  }
  video.srcObject = stream;
  await video.play();
  $("stage").hidden = false;
  overlay.width = video.videoWidth; overlay.height = video.videoHeight;
  const grab = document.createElement("canvas");
  grab.width = video.videoWidth; grab.height = video.videoHeight;
  const state = { stream, video, grab, series: {}, t0: performance.now(), frames: 0, last: performance.now(), fps: 0,
    retry: 0 };
  live = state;
  connect(state);
  $("start").disabled = true; $("stop").disabled = false;
});

$("stop").addEventListener("click", () => {
  if (!live) return;
  const state = live;
  live = null;
  state.stream.getTracks().forEach((t) => t.stop());
  state.ws.close();
  const overlay = $("overlay");
  overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);  // no box left behind
  $("stage").hidden = true;  // no black picture under the words
  $("start").disabled = false; $("stop").disabled = true;
  $("live-status").textContent = "Camera off.";
});

// -- Studies: create one, share its link, watch the viewers arrive, open its report -------------
const studyKey = () => $("s-key").value || sessionStorage.getItem("emoscope-key") || "";
const studyHeaders = () => (studyKey() ? { "X-API-Key": studyKey() } : {});

function parseQuestions(text) {
  return text.split("\n").map((l) => l.trim()).filter(Boolean).map((line) => {
    const [name, choices = ""] = line.split(":");
    return { name: name.trim(), choices: choices.split(",").map((c) => c.trim()).filter(Boolean) };
  });
}

async function studyRequest(url, options = {}) {
  const r = await fetch(url, { ...options, headers: { ...studyHeaders(), ...(options.headers || {}) } });
  const data = await r.json().catch(() => ({ error: `the server answered ${r.status}` }));
  if (!r.ok) throw new Error(data.error || `the server answered ${r.status}`);
  return data;
}

async function refreshStudies() {
  const table = $("s-list");
  let list;
  try {
    list = (await studyRequest("/v1/studies")).studies;
  } catch (e) {
    table.innerHTML = `<tr><td>${e.message}</td></tr>`;
    return;
  }
  const rows = await Promise.all(list.map((s) => studyRequest(`/v1/studies/${s.id}`).catch(() => null)));
  table.innerHTML = "<tr><th>study</th><th>status</th><th>started</th><th>finished</th><th>excluded</th>" +
    "<th>in the report (n)</th><th>viewer link</th><th>results</th><th></th></tr>" +
    rows.filter(Boolean).map((s) => `<tr><td>${s.name}</td><td>${s.status}</td><td>${s.viewers.started}</td>` +
      `<td>${s.viewers.completed}</td><td>${s.viewers.excluded}</td><td>${s.viewers.included}</td>` +
      `<td><input readonly value="${s.participant_url}" aria-label="viewer link" size="28"></td>` +
      `<td><a href="${s.report_url}" target="_blank" data-study="${s.id}" class="s-open">report</a> · ` +
      `<a href="/v1/studies/${s.id}/files/report.pdf" class="s-open">PDF</a> · ` +
      `<a href="/v1/studies/${s.id}/files/per_second.csv" class="s-open">CSV</a> · ` +
      `<a href="/v1/studies/${s.id}/files/frames.parquet" class="s-open">Parquet</a></td>` +
      `<td>${s.status === "open" ? `<button data-close="${s.id}">close</button>` : ""}` +
      `<button data-delete="${s.id}">delete</button></td></tr>`).join("");
}

$("s-list").addEventListener("click", async (e) => {
  const close = e.target.dataset.close, del = e.target.dataset.delete;
  if (!close && !del) return;
  if (del && !confirm("Delete this study, its viewers and all their readings?")) return;
  try {
    await studyRequest(close ? `/v1/studies/${close}/close` : `/v1/studies/${del}`, { method: close ? "POST" : "DELETE" });
  } catch (err) { $("s-status").textContent = `Error: ${err.message}`; }
  refreshStudies();
});

$("s-create").addEventListener("click", async () => {
  const file = $("s-ad").files[0];
  if (!file) { $("s-status").textContent = "Choose the ad (a video) first."; return; }
  if ($("s-key").value) sessionStorage.setItem("emoscope-key", $("s-key").value);
  const query = new URLSearchParams({ name: $("s-name").value, ad_name: file.name,
    retention_days: $("s-retention").value, questions: JSON.stringify(parseQuestions($("s-questions").value)) });
  $("s-status").textContent = "Uploading the ad…";
  try {
    const s = await studyRequest(`/v1/studies?${query}`, { method: "POST", body: file });
    $("s-status").textContent = `Created. Send viewers this link: ${s.participant_url}`;
  } catch (err) { $("s-status").textContent = `Error: ${err.message}`; }
  refreshStudies();
});

document.querySelector("nav button[data-tab='studies']").addEventListener("click", refreshStudies);
setInterval(() => { if ($("studies").classList.contains("active")) refreshStudies(); }, 5000);

// With an API key, the report and files are fetched with the key (a link cannot send the header).
$("s-list").addEventListener("click", async (e) => {
  const link = e.target.closest("a.s-open");
  if (!link || !studyKey()) return;
  e.preventDefault();
  const r = await fetch(link.getAttribute("href"), { headers: studyHeaders() });
  if (!r.ok) { $("s-status").textContent = `Error: the server answered ${r.status}`; return; }
  window.open(URL.createObjectURL(await r.blob()), "_blank");
});

// Recordings made the old way, added to a study: one upload each, aligned by the offsets file.
$("c-import").addEventListener("click", async () => {
  const study = $("c-study").value.trim(), files = [...$("c-recordings").files];
  if (!study || !files.length) { $("c-status").textContent = "Give the study's id and choose the recordings."; return; }
  const offsets = {};
  if ($("c-offsets").files[0]) {
    for (const line of (await $("c-offsets").files[0].text()).split("\n").slice(1)) {
      const [video, offset] = line.split(",");
      if (video && offset) offsets[video.trim().replace(/\.[^.]+$/, "")] = Number(offset);
    }
  }
  let done = 0;
  for (const file of files) {
    const offset = offsets[file.name.replace(/\.[^.]+$/, "")] || 0;
    $("c-status").textContent = `Adding ${file.name} (${done + 1} of ${files.length})…`;
    try {
      await studyRequest(`/v1/studies/${encodeURIComponent(study)}/recordings?offset_s=${offset}&name=${encodeURIComponent(file.name)}`,
        { method: "POST", body: file });
      done += 1;
    } catch (err) { $("c-status").textContent = `Error with ${file.name}: ${err.message}`; return; }
  }
  $("c-status").textContent = `${done} recording(s) added to the study; its report is on the Studies tab.`;
});
