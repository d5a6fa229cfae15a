// Forms that delete or cancel ask first (data-confirm); the server does not depend on it.
document.addEventListener("submit", function (event) {
  const message = event.target.dataset && event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

// Live progress on the job page: fetch the progress box every few seconds while the job is queued or running,
// and reload the page once it has ended (to show the recommendation and the full report).
(function () {
  "use strict";
  const POLL_MS = 3000;

  async function poll() {
    const box = document.getElementById("progress");
    if (!box || box.dataset.active !== "true") return;
    try {
      const response = await fetch(box.dataset.pollUrl, {credentials: "same-origin", cache: "no-store"});
      if (response.redirected || response.status === 401) { window.location.reload(); return; }
      if (response.ok) {
        const doc = new DOMParser().parseFromString(await response.text(), "text/html");
        const next = doc.getElementById("progress");
        if (next) {
          if (next.dataset.active !== "true") { window.location.reload(); return; }
          box.replaceWith(document.importNode(next, true));
        }
      }
    } catch (error) {
      // The server is restarting or the network dropped: try again at the next tick.
    }
    window.setTimeout(poll, POLL_MS);
  }

  window.setTimeout(poll, POLL_MS);
})();
