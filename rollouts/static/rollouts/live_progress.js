// Live progress for the rollout page: while the rollout is active, poll its JSON progress
// endpoint and swap in the re-rendered live part. No dependencies; served from our static files.
(function () {
  "use strict";
  var root = document.getElementById("rollout-live");
  if (!root || root.dataset.active !== "1") return;
  var url = root.dataset.progressUrl + window.location.search;
  var delay = 1500;
  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        root.innerHTML = data.html;
        root.dataset.status = data.status;
        root.dataset.active = data.active ? "1" : "0";
        delay = 1500;
        if (data.active) window.setTimeout(poll, delay);
      })
      .catch(function () {
        delay = Math.min(delay * 2, 30000); // server restarting or network gone: back off
        window.setTimeout(poll, delay);
      });
  }
  window.setTimeout(poll, delay);
})();
