// The upload page: send a photo to the JSON API, wait for the answer, show it, take feedback;
// the session's recent photos reopen their answers from the same API. Numbers and labels read as
// format.js says, the heatmap as heatmap.js draws it. No build step: plain modern JavaScript.
"use strict";

const $ = (id) => document.getElementById(id);
const form = $("upload");
const labels = JSON.parse($("labels").textContent);
let current = null; // the job being shown
let shown = 0; // increases with each photo shown, so a late answer for an earlier one is dropped

function csrfToken() {
  return form.querySelector("[name=csrfmiddlewaretoken]").value;
}

function show(element, visible) {
  element.hidden = !visible;
}

const pause = (seconds) => new Promise((resolve) => setTimeout(resolve, 1000 * seconds));

// The error alone: no photo (a file that is no image would show as a broken one), no answer;
// an answer already shown stays when `keepAnswer` says so (feedback that could not be sent).
function fail(message, keepAnswer = false) {
  $("error").textContent = message;
  show($("error"), true);
  if (!keepAnswer) show($("result"), false);
}

// Starts showing a photo (a file just chosen, or a recent one's address) while its answer comes.
function open(photoUrl) {
  shown += 1;
  current = null;
  show($("error"), false);
  show($("result"), true);
  show($("answer"), false);
  show($("status"), true);
  show($("heatmap"), false);
  show($("heatmap-controls"), false);
  $("show-heatmap").checked = false;
  const preview = $("preview");
  show(preview, false);
  preview.onload = () => show(preview, true);
  preview.onerror = () => show(preview, false);
  if (photoUrl) preview.src = photoUrl; else preview.removeAttribute("src");
  return shown;
}

async function send(file) {
  if (!file) return;
  const ticket = open(file.type.startsWith("image/") ? URL.createObjectURL(file) : null);
  $("status-text").textContent = "Sending…";
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
  if (response.status !== 200 && response.status !== 202) {
    return fail(job.detail || `The server answered ${response.status}.`);
  }
  if (response.status === 200) return settle(job, ticket);
  $("status-text").textContent = "Waiting for the model…";
  await follow(job.id, ticket);
}

// Asks for the job until it is answered (each ask held by the server up to 10 s).
async function follow(id, ticket) {
  for (let attempt = 0; attempt < 60 && ticket === shown; attempt++) {
    let job;
    try {
      const response = await fetch(`${form.dataset.api}/${id}?wait=10`);
      job = await response.json();
      if (response.headers.has("Retry-After")) {
        // the server holds as many waiting requests as it can (this browser's or all): ask again later
        await pause(Number(response.headers.get("Retry-After")) || 1);
        continue;
      }
      if (!response.ok) return ticket === shown && fail(job.detail || `The server answered ${response.status}.`);
    } catch (error) {
      await pause(1);
      continue;
    }
    if (job.status === "done" || job.status === "failed") return settle(job, ticket);
    $("status-text").textContent = job.status === "running" ? "The model is looking…" : "Waiting for the model…";
  }
  if (ticket === shown) fail("No answer yet; the photo is queued and will be answered, reload the page later.");
}

function settle(job, ticket) {
  if (ticket !== shown) return;
  remember(job);
  if (job.status === "failed") return fail(`The model could not answer: ${job.error}`);
  answer(job);
}

// The answer in words: the label, or, when the model is unsure, which label it leans to and how much.
function answerText(job) {
  const label = Format.label(job.label);
  return job.decision === "unsure" ? `Not sure: looks a little more like ${label}, ${Format.percent(job.confidence)}` : label;
}

function probabilityRows(job) {
  const rows = Object.entries(job.probabilities).sort((a, b) => b[1] - a[1]).map(([name, probability]) => {
    const row = document.createElement("tr");
    row.classList.toggle("answered", name === job.label);
    const heading = document.createElement("th");
    heading.scope = "row";
    heading.textContent = Format.label(name);
    const bar = document.createElement("meter");
    Object.assign(bar, { min: 0, max: 1, value: probability, textContent: Format.percent(probability) });
    bar.setAttribute("aria-label", Format.label(name));
    const figure = document.createElement("td");
    figure.className = "number";
    figure.textContent = Format.percent(probability);
    const cell = document.createElement("td");
    cell.append(bar);
    row.append(heading, cell, figure);
    return row;
  });
  $("probabilities").replaceChildren(...rows);
}

function answer(job) {
  current = job;
  show($("status"), false);
  show($("answer"), true);
  $("label").textContent = answerText(job);
  $("answer").classList.toggle("unsure", job.decision === "unsure");
  probabilityRows(job);
  const sure = `${Format.percent(job.confidence)} sure`;
  $("confidence").textContent = job.decision === "unsure" ? `only ${sure}, too little to answer` : sure;
  $("version").textContent = job.version;
  $("took").textContent = Format.milliseconds(job.total_ms);
  show($("heatmap-controls"), Heatmap.draw($("heatmap"), job.heatmap));
  showFeedback(job.feedback);
}

function showFeedback(given) {
  show($("ask-row"), !given);
  show($("correct-label"), false);
  show($("thanks"), Boolean(given));
  $("thanks").textContent = given === "correct"
    ? "Thank you: you said the answer was right."
    : "Thank you: you said the answer was wrong; a curator can add the photo to the dataset with the right label.";
}

// "Wrong": the labels other than the one answered, none chosen, so a hasty click files nothing.
function askRightLabel() {
  const choices = labels.filter((name) => name !== current.label).map((name) => {
    const choice = document.createElement("label");
    const radio = Object.assign(document.createElement("input"), { type: "radio", name: "right-label", value: name });
    radio.addEventListener("change", () => { $("send-label").disabled = false; });
    choice.append(radio, ` ${Format.label(name)}`);
    return choice;
  });
  $("label-choices").replaceChildren(...choices);
  $("send-label").disabled = true;
  show($("ask-row"), false);
  show($("correct-label"), true);
  $("label-choices").querySelector("input")?.focus();
}

async function giveFeedback(correct, label) {
  let response;
  try {
    response = await fetch(`${form.dataset.api}/${current.id}/feedback`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify({ correct, label }),
    });
  } catch (error) {
    return fail("The server cannot be reached; try again in a moment.", true);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) return fail(body.detail || `The server answered ${response.status}.`, true);
  show($("error"), false);
  remember(body);
  if (current && current.id === body.id) {
    current = body;
    showFeedback(body.feedback);
  }
}

// The recent photos' line for a job, as the server writes it on a reload.
function recentText(job) {
  if (job.status !== "done") return `${job.status}${job.version ? ` · v${job.version}` : ""}`;
  const unsure = job.decision === "unsure" ? "not sure, maybe " : "";
  const said = { correct: " · you said right", wrong: " · you said wrong" }[job.feedback] || "";
  return `${unsure}${Format.label(job.label)} (${Format.percent(job.confidence)}) · v${job.version}${said}`;
}

// Adds or updates the job's entry in the recent photos (the server lists them again on a reload).
function remember(job) {
  const list = $("recent");
  list.querySelector(".empty")?.remove();
  let button = list.querySelector(`[data-job="${job.id}"]`);
  if (!button) {
    const item = document.createElement("li");
    button = Object.assign(document.createElement("button"), { type: "button", className: "recent-item" });
    button.dataset.job = job.id;
    const text = Object.assign(document.createElement("span"), { className: "recent-text" });
    button.append(Object.assign(document.createElement("img"), { alt: "", src: job.image_url || "" }), text);
    item.append(button);
    list.prepend(item);
  }
  if (job.image_url) button.querySelector("img").src = job.image_url;
  if (job.queued_at) {
    const time = Object.assign(document.createElement("time"), { dateTime: job.queued_at });
    button.querySelector(".recent-text").replaceChildren(`${recentText(job)} · `, time);
  }
  localTimes();
  for (const other of list.querySelectorAll(".recent-item")) other.toggleAttribute("aria-current", other === button);
}

// Reopens a recent photo's answer (and its feedback) from the API.
async function reopen(id) {
  const ticket = open(null);
  $("status-text").textContent = "Loading…";
  let response;
  try {
    response = await fetch(`${form.dataset.api}/${id}`);
  } catch (error) {
    return fail("The server cannot be reached; try again in a moment.");
  }
  const job = await response.json().catch(() => ({}));
  if (ticket !== shown) return;
  if (!response.ok) return fail(job.detail || `The server answered ${response.status}.`);
  $("preview").src = job.image_url || "";
  if (job.status === "done" || job.status === "failed") return settle(job, ticket);
  $("status-text").textContent = "Waiting for the model…";
  await follow(job.id, ticket);
}

// Times in the visitor's own clock, whatever the server's time zone.
function localTimes() {
  for (const time of $("recent").querySelectorAll("time[datetime]")) {
    time.textContent = new Date(time.dateTime).toLocaleTimeString();
  }
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
  $("wrong").addEventListener("click", askRightLabel);
  $("cancel-label").addEventListener("click", () => showFeedback(null));
  $("send-label").addEventListener("click", () => {
    const chosen = $("label-choices").querySelector("input:checked");
    if (chosen) giveFeedback(false, chosen.value);
  });
  $("recent").addEventListener("click", (event) => {
    const item = event.target.closest(".recent-item");
    if (item) reopen(item.dataset.job);
  });
  localTimes();
}
