// Moves each training's progress bar (templates/admin/classifier/modelversion/progress.html) from
// its JSON endpoint once a second; when a training ends, the page reloads to show the result.
"use strict";
(function () {
  function follow(box) {
    const bar = box.querySelector("progress");
    const text = box.querySelector(".training-progress-text");
    const name = text.textContent.split(":")[0];
    async function poll() {
      let state;
      try {
        const response = await fetch(box.dataset.url, {headers: {Accept: "application/json"}});
        if (!response.ok) throw new Error(response.statusText);
        state = await response.json();
      } catch (error) {
        setTimeout(poll, 3000);
        return;
      }
      bar.value = state.done;
      text.textContent = name + ": " + state.text;
      box.dataset.status = state.status;
      if (state.status === "queued" || state.status === "training") {
        setTimeout(poll, 1000);
      } else {
        window.location.reload();
      }
    }
    setTimeout(poll, 1000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".training-progress[data-url]").forEach(function (box) {
      if (box.dataset.status === "queued" || box.dataset.status === "training") follow(box);
    });
  });
})();
