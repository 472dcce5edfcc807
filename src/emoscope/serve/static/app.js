// emoscope web page: upload a photo or video, or stream the camera over a WebSocket.
const VALENCE_COLORS = { positive: "#3cb44b", negative: "#e6194b", neutral: "#aaaaaa" };
const TRACK_COLORS = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d"];
const $ = (id) => document.getElementById(id);

document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => {
  document.querySelectorAll("nav button, .tab").forEach((e) => e.classList.remove("active"));
  b.classList.add("active");
  $(b.dataset.tab).classList.add("active");
}));

function drawFaces(ctx, faces, scale = 1) {
  ctx.lineWidth = 3;
  ctx.font = "16px system-ui";
  for (const f of faces) {
    const [x, y, w, h] = f.box.map((v) => v * scale);
    const color = VALENCE_COLORS[f.valence] || "#fff";
    ctx.strokeStyle = color;
    ctx.strokeRect(x, y, w, h);
    const tag = `${f.label} ${Math.round(f.probs[f.label] * 100)}%` + (f.track_id ? ` #${f.track_id}` : "");
    const tw = ctx.measureText(tag).width + 8;
    ctx.fillStyle = color;
    ctx.fillRect(x, Math.max(0, y - 22), tw, 22);
    ctx.fillStyle = "#111";
    ctx.fillText(tag, x + 4, Math.max(16, y - 6));
  }
}

function faceList(faces) {
  if (!faces.length) return "<p>No faces found.</p>";
  return faces.map((f, i) => {
    const bars = Object.entries(f.probs).sort((a, b) => b[1] - a[1]).map(([k, p]) =>
      `<div>${k.padEnd(9, "\u00a0")} <span class="bar" style="width:${Math.round(p * 150)}px"></span> ${(p * 100).toFixed(1)}%</div>`).join("");
    return `<div><b>Face ${i + 1}</b>: ${f.label}, ${f.valence} (${f.valence_score.toFixed(2)})${bars}</div>`;
  }).join("");
}

// POST a file as multipart field "file"; returns the JSON, or null after showing the error.
async function upload(url, file) {
  const body = new FormData();
  body.append("file", file);
  const res = await fetch(url, { method: "POST", body });
  const data = await res.json();
  if (!res.ok) { $("upload-status").textContent = `Error: ${data.error}`; return null; }
  return data;
}

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
  $("faces").innerHTML = faceList(data.faces);
  $("upload-status").textContent = `${data.faces.length} face(s) in ${data.elapsed_ms} ms.`;
  $("upload-status").dataset.faces = data.faces.length;
}

// One colour per person, shared by the chart lines and the thumbnails' frames.
const trackColor = (track, order) => TRACK_COLORS[Math.max(0, order.indexOf(String(track))) % TRACK_COLORS.length];

function lineChart(canvas, series, { yMin = -1, yMax = 1, label = "valence", order = Object.keys(series) } = {}) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, pad = 30;
  ctx.clearRect(0, 0, W, H);
  const all = Object.values(series).flat();
  if (!all.length) return;
  const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]), t0 + 1e-6);
  const X = (t) => pad + (W - 2 * pad) * (t - t0) / (t1 - t0), Y = (v) => H - pad - (H - 2 * pad) * (v - yMin) / (yMax - yMin);
  ctx.strokeStyle = "#ccc"; ctx.beginPath(); ctx.moveTo(pad, Y(0)); ctx.lineTo(W - pad, Y(0)); ctx.stroke();
  ctx.fillStyle = "#555"; ctx.font = "12px system-ui";
  ctx.fillText(`${label} over time (s), ${t0.toFixed(1)}–${t1.toFixed(1)}`, pad, 14);
  Object.entries(series).forEach(([track, pts], i) => {
    ctx.strokeStyle = trackColor(track, order); ctx.lineWidth = 2; ctx.beginPath();
    pts.forEach(([t, v], j) => (j ? ctx.lineTo(X(t), Y(v)) : ctx.moveTo(X(t), Y(v))));
    ctx.stroke();
    ctx.fillStyle = ctx.strokeStyle; ctx.fillText(`person ${track}`, W - pad - 70, 14 + 14 * (i + 1));
  });
}

async function analyzeVideo(file) {
  clearResults();
  $("upload-status").textContent = "Uploading…";
  const job = await upload("/v1/videos", file);
  if (!job) return;
  for (;;) {
    const st = await (await fetch(job.status_url)).json();
    if (st.status === "failed") { $("upload-status").textContent = `Failed: ${st.error}`; return; }
    if (st.status === "done") { showVideo(st); return; }
    $("upload-status").textContent = `Analysing… ${st.progress ? Math.round(st.progress * 100) : 0}%`;
    await new Promise((r) => setTimeout(r, 700));
  }
}

function clearResults() {
  const photo = $("photo");
  photo.getContext("2d").clearRect(0, 0, photo.width, photo.height);
  $("faces").innerHTML = "";
  $("video-chart").hidden = true;
  $("summary").hidden = true;
  $("summary").innerHTML = "";
}

function showVideo(st) {
  clearResults();
  $("photo").hidden = true;
  const order = st.summary.map((s) => String(s.track));
  const series = {};
  for (const r of st.timeline) if (!r.short_track) (series[r.track] ||= []).push([r.time, r.valence_score]);
  const chart = $("video-chart");
  chart.hidden = false;
  lineChart(chart, series, { order });
  const table = $("summary");
  const cols = ["track", "frames", "dominant", "mean_valence", "peak_positive_s", "peak_negative_s"];
  const face = (s) => s.thumbnail
    ? `<img class="person" alt="person ${s.track}" src="${s.thumbnail}" style="border-color:${trackColor(s.track, order)}">` : "";
  table.innerHTML = `<tr><th>person</th>${cols.map((c) => `<th>${c}</th>`).join("")}</tr>` +
    st.summary.map((s) => `<tr><td>${face(s)}</td>${cols.map((c) => `<td>${typeof s[c] === "number" ? +s[c].toFixed(3) : s[c]}</td>`).join("")}</tr>`).join("");
  table.hidden = false;
  $("upload-status").textContent = `${st.summary.length} person(s), ${st.timeline.length} face rows.` +
    (st.warnings.length ? ` Warning: ${st.warnings.join("; ")}` : "");
  $("upload-status").dataset.people = st.summary.length;
}

$("file").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (!file) return;
  (file.type.startsWith("video/") ? analyzeVideo : analyzePhoto)(file).catch((err) => {
    $("upload-status").textContent = `Error: ${err}`;
  });
});

// Live mode: one frame in flight at a time, so the page never queues more than the server can do.
let live = null;
$("start").addEventListener("click", async () => {
  const video = $("cam"), overlay = $("overlay"), status = $("live-status");
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  video.srcObject = stream;
  await video.play();
  overlay.width = video.videoWidth; overlay.height = video.videoHeight;
  const grab = document.createElement("canvas");
  grab.width = video.videoWidth; grab.height = video.videoHeight;
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/stream`);
  ws.binaryType = "arraybuffer";
  const series = {}, t0 = performance.now();
  let frames = 0, last = performance.now(), fps = 0, busy = false;
  const send = () => {
    if (!live || busy || ws.readyState !== 1) return;
    busy = true;
    grab.getContext("2d").drawImage(video, 0, 0);
    grab.toBlob((b) => b && b.arrayBuffer().then((buf) => ws.send(buf)), "image/jpeg", 0.7);
  };
  ws.onopen = send;
  ws.onmessage = (ev) => {
    busy = false;
    const msg = JSON.parse(ev.data);
    const ctx = overlay.getContext("2d");
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    if (msg.faces) {
      drawFaces(ctx, msg.faces, overlay.width / msg.width);
      const t = (performance.now() - t0) / 1000;
      for (const f of msg.faces) (series[f.track_id] ||= []).push([t, f.valence_score]);
      for (const k in series) if (series[k].length > 300) series[k].shift();
      lineChart($("live-chart"), series);
    }
    frames += 1;
    const now = performance.now();
    fps = 0.8 * fps + 0.2 * (1000 / (now - last)); last = now;
    status.textContent = `${msg.faces ? msg.faces.length : 0} face(s), ${fps.toFixed(1)} FPS`;
    status.dataset.faces = msg.faces ? msg.faces.length : 0;
    status.dataset.frames = frames;
    status.dataset.fps = fps.toFixed(1);
    send();
  };
  live = { stream, ws };
  $("start").disabled = true; $("stop").disabled = false;
});

$("stop").addEventListener("click", () => {
  if (!live) return;
  live.stream.getTracks().forEach((t) => t.stop());
  live.ws.close();
  live = null;
  $("start").disabled = false; $("stop").disabled = true;
  $("live-status").textContent = "Camera off.";
});
