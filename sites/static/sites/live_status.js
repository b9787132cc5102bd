// Live status on the Site list: while any shown site is deploying, poll the status endpoint and
// update the status badges and ready counts in place (no reload). No dependencies.
(function () {
  "use strict";
  var list = document.getElementById("result_list");
  var config = document.getElementById("site-live-status");
  if (!list || !config) return;
  var colours = JSON.parse(config.dataset.colours);
  var rows = {};
  list.querySelectorAll("tbody tr").forEach(function (row) {
    var box = row.querySelector("input.action-select");
    if (box) rows[box.value] = row;
  });
  var ids = Object.keys(rows);
  if (!ids.length) return;
  function update(data) {
    Object.keys(data.sites).forEach(function (id) {
      var site = data.sites[id], row = rows[id];
      var badge = row && row.querySelector(".status-badge");
      if (badge && !badge.classList.contains("status-" + site.status)) {
        badge.className = "status-badge status-" + site.status;
        badge.style.background = colours[site.status] || "#555";
        badge.textContent = site.label;
        badge.title = site.message;
      }
      var ready = row && row.querySelector("td.field-replicas");
      if (ready) ready.textContent = site.ready;
    });
  }
  var delay = 1500;
  function poll() {
    fetch(config.dataset.url + "?ids=" + ids.join(","), { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (data) {
        update(data);
        delay = 1500;
        window.setTimeout(poll, data.settled ? 10000 : delay);
      })
      .catch(function () { delay = Math.min(delay * 2, 30000); window.setTimeout(poll, delay); });
  }
  window.setTimeout(poll, 500);
})();
