/*
 * The ticket pages, live (portal/templates/tickets/, portal/tickets_views.py).
 *
 * Countdowns. Each clock's `.countdown` carries the server's figures: its mode ("running",
 * "paused", "met", "idle"), the business seconds left (`data-remaining-s`) and its deadline
 * (`data-due-at`), computed at the server time of its part of the page
 * (`data-server-time`, the database's now). A running clock counts down from those alone:
 * time left = (deadline - server time), or the business seconds left once they are negative
 * (overdue), minus the time elapsed since that part arrived (performance.now(), a monotonic
 * clock: the browser's wall clock, however wrong, does not count). So the deadline is the
 * server's, to the second, on any calendar (a business-hours clock that stops for the night
 * counts down to the morning's deadline). A paused or met clock stands still.
 *
 * Live. The page joins the viewer's Socket.IO rooms (`data-rooms`: "noc" for operators, the
 * customer's own room, an account manager's customers' rooms; portal/live.py), and
 * portal/live_tickets.py sends each room a small "ticket" message for every change of a
 * ticket it may know of: {ticket_id, state, entry_id}. The message carries nothing to show:
 * the page fetches itself again through its own scoped route and puts the fresh list (or the
 * ticket's facts, clocks, steps and timeline) in place, so what appears live is exactly what
 * the viewer may read. It does the same after every (re)join, for what happened while it
 * was away. A step form someone is typing in is left as it is. Fetched HTML is parsed into
 * a separate document and its nodes imported; no inline script runs (the CSP forbids it).
 *
 * window.keylineTickets exposes the messages heard and the refreshes for the browser tests.
 */
(function () {
  "use strict";

  var list = document.getElementById("ticket-list");
  var page = document.getElementById("ticket-page");
  var holder = list || page;
  if (!holder) { return; }
  var liveState = document.getElementById("live-state");
  var labels = {};
  var state = {
    socket: null, rooms: (holder.dataset.rooms || "").split(" ").filter(Boolean),
    messages: [], refreshes: 0, joins: 0, inFlight: false, again: false
  };
  window.keylineTickets = state;

  // --- countdowns ---------------------------------------------------------------------

  function readLabels() {
    var template = document.getElementById("ticket-labels");
    if (!template) { return; }
    template.content.querySelectorAll("span[data-text]").forEach(function (el) {
      labels[el.dataset.text] = el.textContent;
    });
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function duration(seconds) {
    var whole = Math.floor(Math.abs(seconds));
    var days = Math.floor(whole / 86400);
    var rest = whole % 86400;
    var hours = Math.floor(rest / 3600);
    var minutes = Math.floor((rest % 3600) / 60);
    var secs = rest % 60;
    var clock = (days ? pad(hours) : String(hours)) + ":" + pad(minutes) + ":" + pad(secs);
    var text = days ? (labels.days || "999 d").replace("999", String(days)) + " " + clock : clock;
    return seconds < 0 ? (labels.overdue || "-@TIME@").replace("@TIME@", text) : text;
  }

  function parseTime(iso) {
    // Python's isoformat has microseconds: keep milliseconds, which every engine parses
    return Date.parse(String(iso).replace(/(\.\d{3})\d+/, "$1"));
  }

  function arrival(part) {
    // when this part's server figures arrived, on the performance.now() scale
    if (part.keylineReceivedAt === undefined) {
      var nav = performance.getEntriesByType ? performance.getEntriesByType("navigation")[0] : null;
      part.keylineReceivedAt = nav ? nav.responseStart : 0;
    }
    return part.keylineReceivedAt;
  }

  function secondsLeft(countdown, part) {
    var remaining = Number(countdown.dataset.remainingS);
    var serverTime = parseTime(part.dataset.serverTime);
    var due = countdown.dataset.dueAt ? parseTime(countdown.dataset.dueAt) : NaN;
    var base = (remaining < 0 || isNaN(due) || isNaN(serverTime))
      ? remaining : (due - serverTime) / 1000;
    return base - (performance.now() - arrival(part)) / 1000;
  }

  function tick() {
    document.querySelectorAll("[data-server-time]").forEach(function (part) {
      part.querySelectorAll('.countdown[data-mode="running"]').forEach(function (countdown) {
        var left = secondsLeft(countdown, part);
        var shown = countdown.querySelector(".left");
        if (shown) { shown.textContent = duration(left); }
        countdown.dataset.left = String(Math.round(left));
        if (left < 0) {
          countdown.classList.add("breached");
          var row = countdown.closest("tr.ticket");
          if (row) { row.classList.add("breached"); }
        }
      });
    });
  }

  // --- fetching the page again ----------------------------------------------------------

  function typing(part) {
    // a step form with text in it, or the focus: someone is writing there
    return Array.prototype.some.call(part.querySelectorAll("input[type=text], textarea"),
      function (input) { return input.value || input === document.activeElement; });
  }

  function put(fresh, received) {
    if (list) {
      var freshList = fresh.getElementById("ticket-list");
      if (!freshList) { return; }
      var before = {};
      list.querySelectorAll("tr.ticket").forEach(function (row) { before[row.dataset.ticket] = true; });
      list.replaceChildren.apply(list, Array.prototype.map.call(freshList.childNodes, function (node) {
        return document.importNode(node, true);
      }));
      Object.keys(freshList.dataset).forEach(function (k) { list.dataset[k] = freshList.dataset[k]; });
      list.keylineReceivedAt = received;
      list.querySelectorAll("tr.ticket").forEach(function (row) {
        if (!before[row.dataset.ticket]) { row.classList.add("live-new"); }
      });
      return;
    }
    fresh.querySelectorAll("[data-live-part]").forEach(function (freshPart) {
      var name = freshPart.dataset.livePart;
      var current = page.querySelector('[data-live-part="' + name + '"]');
      if (!current || (name === "steps" && typing(current))) { return; }
      var imported = document.importNode(freshPart, true);
      imported.keylineReceivedAt = received;
      current.replaceWith(imported);
    });
  }

  function refresh() {
    if (state.inFlight) { state.again = true; return; }
    state.inFlight = true;
    var received = 0;
    fetch(window.location.pathname + window.location.search,
          { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        received = performance.now();
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        put(new DOMParser().parseFromString(html, "text/html"), received);
        state.refreshes += 1;
        tick();
      })
      .catch(function (error) { console.error(error); })
      .finally(function () {
        state.inFlight = false;
        if (state.again) { state.again = false; refresh(); }
      });
  }

  function heard(message) {
    state.messages.push(message);
    if (page && String(message.ticket_id) !== page.dataset.ticket) { return; }
    refresh();
  }

  // --- the socket ---------------------------------------------------------------------

  function setLive(which) {
    if (!liveState || liveState.dataset.state === "reload") { return; }
    liveState.dataset.state = which;
    liveState.textContent = liveState.dataset["label" + which.charAt(0).toUpperCase() + which.slice(1)];
  }

  function join() {
    var waiting = state.rooms.length;
    var ok = true;
    var reload = false;
    state.rooms.forEach(function (room) {
      state.socket.emit("join", { room: room }, function (answer) {
        ok = ok && !!(answer && answer.ok);
        reload = reload || !!(answer && answer.reload);
        waiting -= 1;
        if (waiting > 0) { return; }
        if (reload) {
          setLive("reload");
          state.socket.disconnect();
          return;
        }
        setLive(ok ? "live" : "offline");
        state.joins += 1;
        if (ok) { refresh(); }  // whatever changed before the rooms were joined
      });
    });
  }

  function connect() {
    if (!state.rooms.length || typeof io === "undefined") {
      if (liveState) { liveState.hidden = true; }
      return;
    }
    var socket = io({ transports: window.keylineCommon.socketTransports() });
    state.socket = socket;
    socket.on("connect", join);
    socket.on("disconnect", function () { setLive("offline"); });
    socket.on("connect_error", function () { setLive("offline"); });
    socket.on("ticket", heard);
  }

  readLabels();
  tick();
  window.setInterval(tick, 1000);
  connect();
}());
