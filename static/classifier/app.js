// The upload page: send a photo to the JSON API, wait for the answer, show it, take feedback.
// No build step: plain modern JavaScript.
"use strict";

const $ = (id) => document.getElementById(id);
const form = $("upload");
let current = null; // the job being shown

function csrfToken() {
  return form.querySelector("[name=csrfmiddlewaretoken]").value;
}

function show(element, visible) {
  element.hidden = !visible;
}

function fail(message) {
  $("error").textContent = message;
  show($("error"), true);
  show($("status"), false);
}

async function send(file) {
  if (!file) return;
  show($("error"), false);
  show($("result"), true);
  show($("answer"), false);
  show($("status"), true);
  show($("heatmap"), false);
  $("show-heatmap").checked = false;
  $("status-text").textContent = "Sending…";
  $("preview").src = URL.createObjectURL(file);
  const body = new FormData();
  body.append("image", file, file.name || "pasted.png");
  if (form.dataset.dataset) body.append("dataset", form.dataset.dataset);
  let response;
  try {
    // one request: the server holds the reply up to 10 s for the answer, else says where to look
    response = await fetch(`${form.dataset.api}?wait=10`, {
      method: "POST", body, headers: { "X-CSRFToken": csrfToken() },
    });
  } catch (error) {
    return fail("The server cannot be reached; try again in a moment.");
  }
  const job = await response.json().catch(() => ({}));
  if (response.status === 200) return job.status === "done" ? answer(job) : fail(`The model could not answer: ${job.error}`);
  if (response.status !== 202) return fail(job.detail || `The server answered ${response.status}.`);
  $("status-text").textContent = "Waiting for the model…";
  await follow(job.url);
}

async function follow(url) {
  for (let attempt = 0; attempt < 60; attempt++) {
    let job;
    try {
      const response = await fetch(`${url}?wait=10`);
      job = await response.json();
      if (response.headers.has("Retry-After")) {
        // the server holds as many waiting requests as it can (this browser's or all): ask again later
        await new Promise((resolve) => setTimeout(resolve, 1000 * (Number(response.headers.get("Retry-After")) || 1)));
        continue;
      }
      if (!response.ok) return fail(job.detail || `The server answered ${response.status}.`);
    } catch (error) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      continue;
    }
    if (job.status === "done") return answer(job);
    if (job.status === "failed") return fail(`The model could not answer: ${job.error}`);
    $("status-text").textContent = job.status === "running" ? "The model is looking…" : "Waiting for the model…";
  }
  fail("No answer yet; the photo is queued and will be answered, reload the page later.");
}

function percentOf(job) {
  return Math.round(job.confidence * 1000) / 10;
}

// The answer in words: the label, or, when the model is unsure, which label it leans to and how much.
function answerText(job) {
  const label = job.label.replaceAll("_", " ");
  return job.decision === "unsure" ? `Not sure: looks a little more like ${label}, ${percentOf(job)} %` : label;
}

function answer(job) {
  current = job;
  show($("status"), false);
  show($("answer"), true);
  $("label").textContent = answerText(job);
  $("answer").classList.toggle("unsure", job.decision === "unsure");
  const percent = percentOf(job);
  $("confidence").textContent = `${percent} %`;
  $("confidence-fill").style.width = `${percent}%`;
  $("confidence-bar").setAttribute("aria-valuenow", percent);
  $("version").textContent = job.version;
  $("took").textContent = `${Math.round(job.total_ms)} ms`;
  for (const id of ["ask", "right", "wrong"]) show($(id), true);
  show($("correct-label"), false);
  show($("thanks"), false);
  drawHeatmap(job.heatmap);
  remember(job);
}

function drawHeatmap(grid) {
  const canvas = $("heatmap");
  if (!grid.length) return;
  const rows = grid.length, columns = grid[0].length;
  canvas.width = columns;
  canvas.height = rows;
  const context = canvas.getContext("2d");
  const pixels = context.createImageData(columns, rows);
  grid.flat().forEach((value, index) => {
    // transparent where the photo says nothing for the answer, opaque red-orange where it says most
    pixels.data.set([255, 64, 0, Math.round(190 * value)], index * 4);
  });
  context.putImageData(pixels, 0, 0);
}

function remember(job) {
  const list = $("recent");
  list.querySelector(".empty")?.remove();
  const item = document.createElement("li");
  const time = new Date(job.queued_at).toLocaleTimeString();
  const what = job.decision === "unsure" ? `not sure, maybe ${job.label}` : job.label;
  item.textContent = `${what} (${percentOf(job)} %) · v${job.version} · ${time}`;
  list.prepend(item);
}

async function giveFeedback(correct, label) {
  const response = await fetch(`${form.dataset.api}/${current.id}/feedback`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify({ correct, label }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) return fail(body.detail || `The server answered ${response.status}.`);
  for (const id of ["ask", "right", "wrong", "correct-label"]) show($(id), false);
  show($("thanks"), true);
}

if (form) {
  const drop = $("drop");
  $("image").addEventListener("change", (event) => send(event.target.files[0]));
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    send(event.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (event) => {
    const file = [...event.clipboardData.files].find((item) => item.type.startsWith("image/"));
    if (file) send(file);
  });
  $("show-heatmap").addEventListener("change", (event) => show($("heatmap"), event.target.checked));
  $("right").addEventListener("click", () => giveFeedback(true));
  $("wrong").addEventListener("click", () => { show($("correct-label"), true); show($("right"), false); });
  $("send-label").addEventListener("click", () => giveFeedback(false, $("label-choice").value));
}
