// The dataset page's imports: while one is queued or running, ask every two seconds how far it
// got and move its progress bar and sentence; stop asking once none is.
"use strict";
document.addEventListener("DOMContentLoaded", () => {  // the admin loads form media in <head>
  const box = document.querySelector(".import-runs[data-url]");
  if (!box) return;
  const POLL_MS = 2000;

  async function poll() {
    let answer;
    try {
      const response = await fetch(box.dataset.url, {credentials: "same-origin", headers: {Accept: "application/json"}});
      if (!response.ok) throw new Error(response.statusText);
      answer = await response.json();
    } catch (error) {
      setTimeout(poll, POLL_MS * 5);  // the server is restarting, or the network is down: ask later
      return;
    }
    for (const run of answer.runs) {
      const row = box.querySelector(`.import-run[data-id="${run.id}"]`);
      if (!row) continue;
      row.querySelector(".import-run-text").textContent = run.text;
      const bar = row.querySelector("progress");
      if (bar && run.active) {
        bar.max = Math.max(run.total, 1);
        bar.value = run.done;
      } else if (bar) {
        bar.remove();
      }
      row.dataset.active = run.active ? "1" : "";
    }
    if (answer.runs.some((run) => run.active)) setTimeout(poll, POLL_MS);
  }

  if (box.querySelector('.import-run[data-active="1"]')) setTimeout(poll, POLL_MS);
});
