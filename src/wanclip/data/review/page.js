(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("storyboard-data").textContent);
  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok;
  }
  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).then(function () { return true; },
        function () { return fallbackCopy(text); });
    }
    return Promise.resolve(fallbackCopy(text));
  }
  Array.prototype.forEach.call(document.querySelectorAll("button.copy"), function (button) {
    button.addEventListener("click", function () {
      var shot = data.shots[Number(button.getAttribute("data-shot"))];
      copy(shot.command).then(function (ok) {
        button.textContent = ok ? "Copied" : "Select it";
        button.className = "copy " + (ok ? "done" : "fail");
        setTimeout(function () { button.textContent = "Copy"; button.className = "copy"; }, 1600);
      });
    });
  });
  if (data.live) {
    var playing = function () {
      return Array.prototype.some.call(document.querySelectorAll("video"), function (v) {
        return !v.paused && !v.ended;
      });
    };
    var tick = function () {
      if (playing()) { setTimeout(tick, data.refresh * 1000); } else { location.reload(); }
    };
    setTimeout(tick, data.refresh * 1000);
  }
}());
