// Live updates and the idle-timeout warning for the portal's pages (the server's side is
// apps/portal/views_live.py).
//
// A page opts in with regions: any element with an id, data-live-region and data-live-analysis
// ("3" for one analysis, "3 7" for several, "*" for any) is refreshed in place when the
// fingerprint of an analysis it shows changes. The page is fetched again from its own address and
// the element with the same id takes the old one's place: no reload, the scroll position, the
// focus and open <details> are kept, and a region holding a form field that is being edited waits
// until the field loses focus. The status line (#live-status, aria-live="polite") says what changed.
//
// The poll asks data-live-url every 5 s with If-None-Match (a bodiless 304 while nothing changed),
// every 60 s while the tab is hidden, and backs off after errors. It and the refreshes send
// X-Live: 1, which the server reads as "not the person's activity": an open tab never keeps its
// session alive. Two minutes before the idle timeout, #idle-warning offers to.
(function () {
  "use strict";

  var body = document.body;
  var liveUrl = body.getAttribute("data-live-url");
  if (!liveUrl) {
    return;
  }
  var VISIBLE_MS = 5000;
  var HIDDEN_MS = 60000;
  var MAX_BACKOFF_MS = 120000;
  var WARN_BEFORE_S = 120;
  var FOCUSABLE = "a[href], button, input, select, textarea, summary, [tabindex]";
  var idleTimeout = parseInt(body.getAttribute("data-idle-timeout"), 10) || 0;
  var loginUrl = body.getAttribute("data-login-url") || "/accounts/login/";
  var statusLine = document.getElementById("live-status");
  var warning = document.getElementById("idle-warning");

  var etag = null;
  // what the page was rendered with, when the page says (else the first poll's answer)
  var known = readKnown(body.getAttribute("data-live-known"));
  var pollTimer = null;
  var failures = 0;
  var stopped = false;
  var pending = {};
  var pendingMessage = "";
  var refreshing = false;
  var idleTimer = null;
  var deadline = Date.now() + idleTimeout * 1000;

  function readKnown(text) {
    if (!text) {
      return null;
    }
    try {
      var map = {};
      JSON.parse(text).forEach(function (entry) {
        map[entry.id] = entry;
      });
      return map;
    } catch (error) {
      return null;
    }
  }

  function regions() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-live-region][id]"));
  }

  function watched(region) {
    return (region.getAttribute("data-live-analysis") || "").split(/\s+/).filter(Boolean);
  }

  function shownOnPage(id) {
    return regions().some(function (region) {
      var ids = watched(region);
      return ids.indexOf("*") >= 0 || ids.indexOf(String(id)) >= 0;
    });
  }

  function say(text) {
    if (statusLine && text) {
      statusLine.textContent = text;
      statusLine.classList.add("changed");
    }
  }

  function describe(before, after) {
    var name = after.label;
    if (after.result && (!before.result || before.result.id !== after.result.id)) {
      return "A new result for " + name + " (result " + after.result.id + ") arrived.";
    }
    if (after.state !== before.state) {
      if (after.state === "running") {
        return "Recompute of " + name + " running…";
      }
      if (after.state === "queued") {
        return "Recompute of " + name + " queued.";
      }
      if (after.state === "failed") {
        return "The newest result of " + name + " has no estimate; the last result with one is still shown.";
      }
      if (after.state === "waiting") {
        return name + " is waiting for data; the last result with an estimate is still shown.";
      }
      if (after.state === "done") {
        return name + " is up to date.";
      }
    }
    if (after.releases.join(",") !== before.releases.join(",") && after.releases.length) {
      return "The result for " + name + " is now in release " + after.releases[after.releases.length - 1] + ".";
    }
    return name + " changed.";
  }

  // --- the poll ---------------------------------------------------------------------------------

  function schedule(ms) {
    window.clearTimeout(pollTimer);
    if (!stopped) {
      pollTimer = window.setTimeout(poll, ms);
    }
  }

  function nextDelay() {
    var base = document.hidden ? HIDDEN_MS : VISIBLE_MS;
    return failures ? Math.min(MAX_BACKOFF_MS, base * Math.pow(2, failures)) : base;
  }

  function poll() {
    var headers = { Accept: "application/json", "X-Live": "1" };
    if (etag) {
      headers["If-None-Match"] = etag;
    }
    fetch(liveUrl, { headers: headers, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        idleFrom(response);
        if (response.status === 401) {
          signedOut();
          return null;
        }
        if (response.status === 304) {
          return null;
        }
        if (!response.ok) {
          throw new Error("live updates answered " + response.status);
        }
        etag = response.headers.get("ETag");
        return response.json();
      })
      .then(function (data) {
        failures = 0;
        if (data) {
          update(data.analyses);
        }
      })
      .catch(function () {
        failures += 1;
      })
      .then(function () {
        schedule(nextDelay());
      });
  }

  function update(analyses) {
    var next = {};
    analyses.forEach(function (entry) {
      next[entry.id] = entry;
    });
    if (known === null) {
      known = next;
    }
    body.setAttribute("data-live-following", "");
    var changed = [];
    var messages = [];
    Object.keys(next).forEach(function (id) {
      var before = known[id];
      // an analysis the page was not rendered with (a new one) waits for the next change
      if (!before || before.fingerprint === next[id].fingerprint) {
        return;
      }
      changed.push(id);
      if (shownOnPage(id)) {
        messages.push(describe(before, next[id]));
      }
    });
    known = next;
    if (!changed.length) {
      return;
    }
    var targets = regions().filter(function (region) {
      var ids = watched(region);
      return (
        ids.indexOf("*") >= 0 ||
        changed.some(function (id) {
          return ids.indexOf(id) >= 0;
        })
      );
    });
    if (!targets.length) {
      return;
    }
    targets.forEach(function (region) {
      pending[region.id] = true;
    });
    pendingMessage = (pendingMessage ? pendingMessage + " " : "") + messages.join(" ");
    refresh();
  }

  // --- refreshing regions -----------------------------------------------------------------------

  function editing(region) {
    var active = document.activeElement;
    return (
      active !== null &&
      region.contains(active) &&
      (active.matches("input, textarea, select") || active.isContentEditable)
    );
  }

  function refresh() {
    if (refreshing || stopped) {
      return;
    }
    refreshing = true;
    fetch(window.location.href, {
      headers: { Accept: "text/html", "X-Live": "1" },
      credentials: "same-origin",
      cache: "no-store",
    })
      .then(function (response) {
        if (response.redirected && new URL(response.url).pathname === new URL(loginUrl, window.location.href).pathname) {
          signedOut();
          return null;
        }
        if (!response.ok) {
          throw new Error("the page answered " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        if (html === null) {
          return;
        }
        swap(new DOMParser().parseFromString(html, "text/html"));
        if (pendingMessage) {
          say(pendingMessage);
          pendingMessage = "";
        }
      })
      .catch(function () {
        // the regions stay pending: the next change, or the next focus change, tries again
      })
      .then(function () {
        refreshing = false;
      });
  }

  function swap(doc) {
    var x = window.scrollX;
    var y = window.scrollY;
    Object.keys(pending).forEach(function (id) {
      var old = document.getElementById(id);
      var fresh = doc.getElementById(id);
      if (!old || !fresh) {
        delete pending[id];
        return;
      }
      if (editing(old)) {
        return; // after the field loses focus
      }
      var active = document.activeElement;
      var focusId = null;
      var focusIndex = -1;
      if (active && old.contains(active)) {
        focusId = active.id || null;
        focusIndex = Array.prototype.indexOf.call(old.querySelectorAll(FOCUSABLE), active);
      }
      var open = Array.prototype.map.call(old.querySelectorAll("details"), function (d) {
        return d.open;
      });
      var node = document.importNode(fresh, true);
      old.replaceWith(node);
      Array.prototype.forEach.call(node.querySelectorAll("details"), function (d, i) {
        if (i < open.length) {
          d.open = open[i];
        }
      });
      var target = focusId ? document.getElementById(focusId) : null;
      if (!target && focusIndex >= 0) {
        target = node.querySelectorAll(FOCUSABLE)[focusIndex] || null;
      }
      if (target) {
        target.focus({ preventScroll: true });
      }
      node.classList.add("live-updated");
      window.setTimeout(function () {
        node.classList.remove("live-updated");
      }, 2000);
      delete pending[id];
    });
    window.scrollTo(x, y);
  }

  document.addEventListener("focusout", function () {
    if (Object.keys(pending).length) {
      window.setTimeout(refresh, 0);
    }
  });

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && known !== null) {
      schedule(0);
    }
  });

  // --- the idle timeout -------------------------------------------------------------------------

  function idleFrom(response) {
    var left = parseInt(response.headers.get("X-Idle-Seconds-Left"), 10);
    if (!isNaN(left)) {
      setDeadline(left);
    }
  }

  function setDeadline(seconds) {
    deadline = Date.now() + seconds * 1000;
    window.clearTimeout(idleTimer);
    if (seconds <= 0) {
      // the server ends the session: ask it (a 401 then) rather than guess from this clock
      idleTimer = window.setTimeout(checkIdle, 2000);
    } else if (seconds > WARN_BEFORE_S) {
      hideWarning();
      idleTimer = window.setTimeout(checkIdle, (seconds - WARN_BEFORE_S) * 1000);
    } else {
      showWarning(seconds);
      idleTimer = window.setTimeout(checkIdle, Math.min(seconds, 30) * 1000);
    }
  }

  // The live endpoint's answer to a HEAD: signed out (401), or the idle time left.
  function idleAnswer(response) {
    if (response.status === 401) {
      signedOut();
      return;
    }
    idleFrom(response);
  }

  // Another tab may have been used meanwhile: the server knows the last activity.
  function checkIdle() {
    fetch(liveUrl, { method: "HEAD", headers: { "X-Live": "1" }, credentials: "same-origin", cache: "no-store" })
      .then(idleAnswer)
      .catch(function () {
        setDeadline(Math.max(0, Math.round((deadline - Date.now()) / 1000)));
      });
  }

  function stayActive() {
    fetch(liveUrl + "?renew=1", { method: "HEAD", credentials: "same-origin", cache: "no-store" })
      .then(idleAnswer)
      .catch(function () {
        say("The server could not be reached; your session may end soon.");
      });
  }

  function minutes(seconds, round) {
    var m = Math.max(1, round(seconds / 60));
    return m + " minute" + (m === 1 ? "" : "s");
  }

  function showWarning(seconds) {
    if (!warning) {
      return;
    }
    var text = "Without activity you will be signed out in about " + minutes(seconds, Math.ceil) + ". ";
    var line = warning.querySelector(".idle-text");
    if (!line || warning.hidden) {
      // built once per warning: a screen reader hears it once, and the button keeps its focus
      warning.textContent = "";
      line = document.createElement("span");
      line.className = "idle-text";
      warning.appendChild(line);
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = "Stay signed in";
      button.addEventListener("click", stayActive);
      warning.appendChild(button);
      warning.hidden = false;
    }
    if (line.textContent !== text) {
      line.textContent = text;
    }
  }

  function hideWarning() {
    if (warning && !warning.hidden) {
      warning.hidden = true;
      warning.textContent = "";
    }
  }

  function signedOut() {
    if (stopped) {
      return;
    }
    stopped = true;
    window.clearTimeout(pollTimer);
    window.clearTimeout(idleTimer);
    if (!warning) {
      return;
    }
    var idle = Date.now() >= deadline - 5000;
    warning.textContent = idle
      ? "You were signed out after " + minutes(idleTimeout, Math.floor) + " without activity. "
      : "Your session has ended. ";
    var link = document.createElement("a");
    link.href = loginUrl + "?next=" + encodeURIComponent(window.location.pathname + window.location.search);
    link.textContent = "Sign in again";
    warning.appendChild(link);
    warning.hidden = false;
  }

  // --- start ------------------------------------------------------------------------------------

  if (idleTimeout > 0) {
    setDeadline(idleTimeout);
  }
  if (regions().length) {
    poll();
  }
})();
