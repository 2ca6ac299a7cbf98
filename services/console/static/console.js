// Driftloop console: live updates. Every data-refresh seconds the page fetches itself again and swaps in
// its <main>, unless the user is in a form or has typed a reason (a form being filled is never replaced).
(function () {
  "use strict";
  var seconds = parseFloat(document.body.getAttribute("data-refresh") || "0");
  if (!(seconds > 0)) { return; }
  function busy() {
    var active = document.activeElement;
    if (active && active.closest && active.closest("main form")) { return true; }
    var reasons = document.querySelectorAll("main input[name=reason]");
    for (var i = 0; i < reasons.length; i++) {
      if (reasons[i].value) { return true; }
    }
    return false;
  }
  function refresh() {
    if (document.hidden || busy()) { return; }
    fetch(window.location.href, {credentials: "same-origin", headers: {"X-Live-Update": "1"}})
      .then(function (response) {
        if (!response.ok || response.redirected) { return null; }
        return response.text();
      })
      .then(function (text) {
        if (!text || busy()) { return; }
        var page = new DOMParser().parseFromString(text, "text/html");
        var fresh = page.getElementById("live");
        var updated = page.getElementById("updated");
        if (fresh) { document.getElementById("live").replaceWith(fresh); }
        if (updated) { document.getElementById("updated").replaceWith(updated); }
      })
      .catch(function () { /* the console is restarting: try again next time */ });
  }
  window.setInterval(refresh, seconds * 1000);
})();
