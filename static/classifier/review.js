// The review grid: keys 1…n give the focused photo the dataset's n-th label, x skips it; each
// answer is one POST to the JSON endpoint, after which focus moves to the next open photo.
"use strict";

(() => {
  const root = document.getElementById("review");
  if (!root) return;
  const cards = Array.from(document.querySelectorAll(".review-card"));
  const labels = Array.from(cards[0]?.querySelectorAll("[data-label]") || []).map((b) => b.dataset.label);
  const csrf = root.querySelector("[name=csrfmiddlewaretoken]").value;
  const status = document.getElementById("review-status");
  const error = document.getElementById("review-error");
  const tally = { labelled: 0, skipped: 0 };
  let focused = null;

  const open = (card) => !card.classList.contains("labelled") && !card.classList.contains("skipped")
    && !card.classList.contains("sending");

  function focus(card) {
    if (focused) focused.classList.remove("focused");
    focused = card;
    if (!card) return;
    card.classList.add("focused");
    card.focus({ preventScroll: true });
    card.scrollIntoView({ block: "nearest" });
  }

  function next(from, step = 1) {
    const start = cards.indexOf(from);
    for (let i = start + step; i >= 0 && i < cards.length; i += step) if (open(cards[i])) return cards[i];
    return cards.find(open) || null;
  }

  function report() {
    const left = cards.filter(open).length;
    status.textContent = `${tally.labelled} labelled, ${tally.skipped} skipped, ${left} left.`;
    document.getElementById("review-done").hidden = left > 0;
  }

  // One request at a time, in the order of the keys: a curator may type faster than answers come.
  let sending = Promise.resolve();

  function send(card, body) {
    card.classList.add("sending");
    focus(next(card));
    sending = sending.then(() => post(card, body));
  }

  async function post(card, body) {
    let response, answer;
    try {
      response = await fetch(root.dataset.labelUrl, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
        body: JSON.stringify({ job: card.dataset.job, ...body }),
      });
      answer = await response.json();
    } catch (failure) {
      answer = { error: `The server did not answer (${failure.message}); try again.` };
    }
    card.classList.remove("sending");
    if (!response || !response.ok) {
      error.textContent = answer.error || `Refused (HTTP ${response.status}).`;
      error.hidden = false;
      focus(card);
      return;
    }
    error.hidden = true;
    if (answer.skipped) {
      card.classList.add("skipped");
      card.querySelector(".review-result").textContent = "skipped";
      tally.skipped += 1;
    } else {
      card.classList.add("labelled");
      const link = document.createElement("a");
      link.href = answer.image_url;
      link.textContent = `✓ ${answer.label}`;
      card.querySelector(".review-result").replaceChildren(link);
      card.dataset.image = answer.image;
      tally.labelled += 1;
    }
    report();
  }

  function act(card, key) {
    if (!card || !open(card) || root.dataset.canLabel !== "1") return false;
    if (key === "x") send(card, { skip: true });
    else if (/^[1-9]$/.test(key) && Number(key) <= labels.length) send(card, { label: labels[Number(key) - 1] });
    else return false;
    return true;
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.target.matches("input, select, textarea")) return;
    if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
      focus(next(focused, event.key === "ArrowRight" ? 1 : -1) || focused);
      event.preventDefault();
    } else if (act(focused, event.key.toLowerCase())) {
      event.preventDefault();
    }
  });

  for (const card of cards) {
    card.addEventListener("click", (event) => {
      const button = event.target.closest("button");
      if (!button) return focus(card);
      if (button.dataset.skip) act(card, "x");
      else act(card, String(labels.indexOf(button.dataset.label) + 1));
    });
  }
  if (root.dataset.canLabel !== "1") {
    for (const button of root.querySelectorAll(".review-buttons button")) button.disabled = true;
  }
  focus(cards.find(open) || null);
})();
