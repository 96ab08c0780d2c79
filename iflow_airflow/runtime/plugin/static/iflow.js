// iflow page: refresh the figures every 10 s (no build step, no framework).
// The server renders everything; this script only swaps in a fresh copy of #content.
(function () {
  "use strict";
  var PERIOD_MS = 10000;
  var box = document.getElementById("autorefresh");
  var busy = false;

  function refresh() {
    if (busy || (box && !box.checked) || document.hidden) return;
    busy = true;
    fetch("fragment", { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) {
        if (r.status === 401 || r.status === 403) {
          if (box) box.checked = false;  // logged out: stop polling
          throw new Error("not authenticated");
        }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        var main = document.getElementById("content");
        if (main) main.innerHTML = html;
        document.documentElement.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function (err) { console.warn("iflow: refresh failed:", err.message); })
      .then(function () { busy = false; });
  }

  setInterval(refresh, PERIOD_MS);
  document.addEventListener("visibilitychange", refresh);
})();
