(function () {
  "use strict";
  function readData(doc) { return JSON.parse(doc.getElementById("storyboard-data").textContent); }
  var data = readData(document);
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
  // one listener for every Copy button, those of parts swapped in later too
  document.addEventListener("click", function (event) {
    var button = event.target && event.target.closest ? event.target.closest("button.copy") : null;
    if (!button) { return; }
    var shot = button.getAttribute("data-shot");
    var text = shot === null ? data.command : data.shots[Number(shot)].command;
    copy(text).then(function (ok) {
      button.textContent = ok ? "Copied" : "Select it";
      button.className = "copy " + (ok ? "done" : "fail");
      setTimeout(function () { button.textContent = "Copy"; button.className = "copy"; }, 1600);
    });
  });

  // -- refreshing while a render runs, never restarting a video ------------------------------------
  var KEY = "wanclip-videos:" + location.pathname;
  function videos(root) { return Array.prototype.slice.call(root.querySelectorAll("video")); }
  function plays(v) { return !v.paused && !v.ended; }
  function remember() {  // where each video stands, for the page after a reload
    try {
      sessionStorage.setItem(KEY, JSON.stringify(videos(document).filter(function (v) {
        return v.currentTime > 0 && !v.ended;
      }).map(function (v) { return {src: v.getAttribute("src"), at: v.currentTime}; })));
    } catch (e) { /* no storage (private mode): a reload starts the videos at 0 */ }
  }
  function restore() {
    var stood = [];
    try { stood = JSON.parse(sessionStorage.getItem(KEY) || "[]"); sessionStorage.removeItem(KEY); } catch (e) { stood = []; }
    stood.forEach(function (saved) {
      videos(document).forEach(function (v) {
        if (v.getAttribute("src") !== saved.src) { return; }
        var seek = function () { v.currentTime = saved.at; };
        if (v.readyState >= 1) { seek(); } else { v.preload = "metadata"; v.addEventListener("loadedmetadata", seek, {once: true}); }
      });
    });
  }
  restore();
  if (!data.live) { return; }

  function parts(doc) {
    var found = {};
    Array.prototype.forEach.call(doc.querySelectorAll("[data-part]"), function (el) { found[el.getAttribute("data-part")] = el; });
    return found;
  }
  function order(doc) {
    return Array.prototype.map.call(doc.querySelectorAll("[data-part]"), function (el) { return el.getAttribute("data-part"); }).join("\n");
  }
  function reloadWhenIdle() {  // false: a video plays, try again later
    if (videos(document).some(plays)) { return false; }
    remember();
    location.reload();
    return true;
  }
  // Swap in each part whose sig changed; each video still there moves into the new part as it is
  // (playing on, paused where it stood). A part whose playing video is gone waits. Returns
  // "done", "waiting" (some part waits) or "reloading".
  function update(doc) {
    if (order(doc) !== order(document)) { return reloadWhenIdle() ? "reloading" : "waiting"; }
    var fresh = parts(doc), waiting = false;
    var current = parts(document);
    Object.keys(current).forEach(function (key) {
      var old = current[key], next = fresh[key];
      if (next.getAttribute("data-sig") === old.getAttribute("data-sig")) { return; }
      next = document.importNode(next, true);
      var kept = videos(old);
      var slots = videos(next);
      var lost = kept.filter(function (v) {
        return plays(v) && !slots.some(function (n) { return n.getAttribute("src") === v.getAttribute("src"); });
      });
      if (lost.length) { waiting = true; return; }
      var resume = [];
      slots.forEach(function (slot) {
        var same = kept.filter(function (v) { return v.getAttribute("src") === slot.getAttribute("src"); })[0];
        if (same) {
          kept.splice(kept.indexOf(same), 1);
          if (plays(same)) { resume.push(same); }
          slot.parentNode.replaceChild(same, slot);
        }
      });
      old.parentNode.replaceChild(next, old);
      resume.forEach(function (v) { if (v.paused) { v.play().catch(function () {}); } });
    });
    data = readData(doc);
    document.getElementById("storyboard-data").textContent = doc.getElementById("storyboard-data").textContent;
    document.title = doc.title;
    return waiting ? "waiting" : "done";
  }
  var served = location.protocol.indexOf("http") === 0;  // served (http or https), not file:
  function later() { setTimeout(tick, data.refresh * 1000); }
  function tick() {
    if (!served) {  // file://: no fetch; reload once nothing plays
      if (!reloadWhenIdle()) { later(); }
      return;
    }
    fetch(location.pathname + location.search, {cache: "no-store"}).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.text();
    }).then(function (text) {
      var doc = new DOMParser().parseFromString(text, "text/html");
      var state = update(doc);
      if (state === "waiting" || (state === "done" && data.live)) { later(); }
    }).catch(function () { later(); });  // the server went away for a moment: ask again
  }
  later();
}());
