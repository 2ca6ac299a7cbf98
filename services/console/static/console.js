// Driftloop console: live updates. Every data-refresh seconds the page fetches itself again and swaps in
// its <main>, unless the user is typing a reason (a form with text in it is never replaced).
(function () {
  "use strict";
  var seconds = parseFloat(document.body.getAttribute("data-refresh") || "0");
  if (!(seconds > 0)) { return; }
  function busy() {
    var fields = document.querySelectorAll("main input[type=text], main input:not([type]), main select");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i] === document.activeElement || (fields[i].tagName === "INPUT" && fields[i].value)) { return true; }
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
