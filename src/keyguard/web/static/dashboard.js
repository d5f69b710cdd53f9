// keyguard dashboard: live countdowns and a pausable auto-refresh. No dependencies, no build step.
(function () {
  "use strict";
  var body = document.body;
  var serverNow = Date.parse(body.getAttribute("data-now") || "");
  // Count from the server's clock, not the browser's: skew would make deadlines lie.
  var skew = isNaN(serverNow) ? 0 : serverNow - Date.now();

  function span(ms) {
    var s = Math.floor(Math.abs(ms) / 1000);
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + (m < 10 ? "0" : "") + m + "m";
    if (m) return m + "m";
    return (s % 60) + "s";
  }

  function tick() {
    var now = Date.now() + skew;
    var items = document.querySelectorAll("[data-due]");
    for (var i = 0; i < items.length; i++) {
      var el = items[i];
      var due = Date.parse(el.getAttribute("data-due"));
      if (isNaN(due)) continue;
      var left = due - now;
      var state = left < 0 ? "overdue" : left <= 3600000 ? "soon" : "pending";
      el.textContent = left < 0 ? "overdue by " + span(left) : "due in " + span(left);
      el.className = "countdown cd-" + state;
    }
  }

  var refresh = parseInt(body.getAttribute("data-refresh") || "0", 10);
  var paused = false;
  try { paused = window.localStorage.getItem("keyguard.refresh.paused") === "1"; } catch (e) { paused = false; }
  var toggle = document.querySelector("[data-refresh-toggle]");
  var status = document.querySelector("[data-refresh-status]");

  function showState() {
    if (!toggle) return;
    toggle.hidden = false;
    toggle.setAttribute("aria-pressed", paused ? "true" : "false");
    toggle.textContent = paused ? "Resume refresh" : "Pause refresh";
    if (status) status.textContent = paused ? "· auto-refresh paused" : "· refreshes every " + refresh + " s";
  }

  if (refresh > 0) {
    showState();
    if (toggle) {
      toggle.addEventListener("click", function () {
        paused = !paused;
        try { window.localStorage.setItem("keyguard.refresh.paused", paused ? "1" : "0"); } catch (e) { /* private mode */ }
        showState();
      });
    }
    window.setInterval(function () {
      if (!paused && document.visibilityState === "visible") window.location.reload();
    }, refresh * 1000);
  }
  tick();
  window.setInterval(tick, 1000);
})();
