// The study viewer's page: consent and questions, a camera check, then the ad with camera frames
// sent over a WebSocket, each stamped with the ad's currentTime (8 bytes, float64 LE) before the JPEG.
const $ = (id) => document.getElementById(id);
const token = location.pathname.split("/").filter(Boolean)[1];
const base = `/p/${token}`;
const CHECK = -1;  // a frame stamped -1 is the camera check: answered, never stored
let info = null, viewer = null, socket = null, stream = null, timer = null, readable = 0;

function show(step) {
  for (const s of document.querySelectorAll(".step")) s.hidden = s.id !== step;
}

function mmss(s) { return `${Math.floor(s / 60)}:${String(Math.round(s % 60)).padStart(2, "0")}`; }

async function load() {
  const r = await fetch(`${base}/info`);
  if (!r.ok) { $("consent-status").textContent = "This link is not valid any more."; return; }
  info = await r.json();
  $("title").textContent = info.name;
  $("length").textContent = mmss(info.ad_seconds);
  $("retention").textContent = info.retention_days;
  $("fps").textContent = Math.min(5, info.max_fps);
  if (!info.open) { $("consent-status").textContent = "This study is closed: thank you for your interest."; return; }
  const form = $("questions");
  for (const q of info.questions) {
    const label = document.createElement("label");
    label.textContent = q.name + " ";
    let input;
    if (q.choices.length) {
      input = document.createElement("select");
      input.append(new Option("(choose)", ""));
      for (const c of q.choices) input.append(new Option(c, c));
    } else {
      input = document.createElement("input");
      input.maxLength = 200;
    }
    input.name = q.name;
    label.append(input);
    form.append(label);
  }
  $("agree").onchange = () => { $("start").disabled = !$("agree").checked; };
}

$("start").onclick = async () => {
  const answers = Object.fromEntries(new FormData($("questions")).entries());
  const r = await fetch(`${base}/viewers`, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ consent: true, answers }) });
  const data = await r.json();
  if (!r.ok) { $("consent-status").textContent = data.error; return; }
  viewer = data;
  sessionStorage.setItem(`emoscope-viewer-${token}`, JSON.stringify(viewer));
  show("check");
  startCamera();
};

function openSocket() {
  return new Promise((resolve) => {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}${base}/ws?viewer=${viewer.viewer}&key=${encodeURIComponent(viewer.key)}`);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => resolve(socket);
    socket.onmessage = (e) => onAnswer(JSON.parse(e.data));
    socket.onclose = () => { socket = null; };
  });
}

const grab = document.createElement("canvas");
function sendFrame(time) {
  const video = $("camera");
  if (!socket || socket.readyState !== WebSocket.OPEN || !video.videoWidth) return;
  const width = 320, height = Math.round(320 * video.videoHeight / video.videoWidth);
  grab.width = width; grab.height = height;
  grab.getContext("2d").drawImage(video, 0, 0, width, height);
  grab.toBlob(async (blob) => {
    if (!blob || !socket || socket.readyState !== WebSocket.OPEN) return;
    const jpeg = new Uint8Array(await blob.arrayBuffer());
    const message = new Uint8Array(8 + jpeg.length);
    new DataView(message.buffer).setFloat64(0, time, true);
    message.set(jpeg, 8);
    socket.send(message);
  }, "image/jpeg", 0.75);
}

function onAnswer(a) {
  if (a.check) {
    $("check-status").textContent = a.advice || "Your face is clearly visible. You can start.";
    if (!a.advice) readable += 1;
    $("play").disabled = readable < 2;
  } else if (a.t !== undefined) {
    $("watch-status").textContent = a.readable ? "" : "We cannot see your face well: please face the screen.";
  }
}

async function startCamera() {
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (e) {
    $("check-status").textContent = "No camera could be opened. Allow the camera for this page, or use a device with one.";
    return;
  }
  $("camera").srcObject = stream;
  await openSocket();
  timer = setInterval(() => sendFrame(CHECK), 400);
}

$("play").onclick = () => {
  clearInterval(timer);
  show("watch");
  const ad = $("ad");
  ad.src = `${base}/ad`;
  let furthest = 0;
  ad.ontimeupdate = () => { if (!ad.seeking) furthest = Math.max(furthest, ad.currentTime); };
  ad.onseeking = () => { if (Math.abs(ad.currentTime - furthest) > 0.5) ad.currentTime = furthest; };  // no seeking
  ad.onplay = () => { timer = setInterval(() => sendFrame(ad.currentTime), 1000 / Math.min(5, info.max_fps)); };
  ad.onpause = () => clearInterval(timer);
  ad.onended = finish;
  ad.play().catch(() => { $("watch-status").textContent = "Press play to start the video."; ad.controls = true; });
};

async function finish() {
  clearInterval(timer);
  if (stream) stream.getTracks().forEach((t) => t.stop());
  await fetch(`${base}/viewers/${viewer.viewer}/done?key=${encodeURIComponent(viewer.key)}`, { method: "POST" });
  if (socket) socket.close();
  show("done");
}

$("withdraw").onclick = async () => {
  const r = await fetch(`${base}/viewers/${viewer.viewer}?key=${encodeURIComponent(viewer.key)}`, { method: "DELETE" });
  $("done-status").textContent = r.ok ? "Your readings and answers were deleted." : "Withdrawing did not work; try again.";
  $("withdraw").disabled = r.ok;
  sessionStorage.removeItem(`emoscope-viewer-${token}`);
};

load();
