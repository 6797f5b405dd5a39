/*
 * The NOC's live topology page (portal/templates/noc/topology.html).
 *
 * 1. Fetch a view (/api/v1/topology/global, customers/<id>, vpns/<id>, circuits/<id>):
 *    Cytoscape elements with status and utilization, device positions computed by the server
 *    (portal/noc.py device_positions), and `event_id`, the last event the statuses include.
 * 2. Draw it with Cytoscape.js (preset layout: the server's positions, portal/layout.py, where
 *    no link runs through a device or over another link's middle), colours by status, and
 *    links stacked by status: down above degraded above unknown above up, so a fault is never
 *    drawn under a healthy link; parallel links curve apart.
 * 3. Join the Socket.IO room (portal/live.py) with "after" = the last event id seen. The
 *    server first sends a snapshot ("snapshot": true): the status of every device, link and
 *    circuit of the room as it is now, which the page takes in place of its own (and a view
 *    element it does not name is gone: the view is fetched again). Every later "status"
 *    message recolours the elements it names; applying one twice changes nothing. On a
 *    reconnect socket.io-client fires "connect" again and the page rejoins: a new snapshot,
 *    then what follows it, so nothing missed meanwhile stays on the page. A message with
 *    `resync` (the topology changed) makes the page fetch the view again; the messages heard
 *    while a view is fetched are applied again on top of it, so an answer older than them
 *    does not undo them.
 *
 * The circuits' table shows each circuit's service state as the alarm pipeline stored it
 * (the view's and the messages' "status", with "underlying" beneath a maintenance, its
 * "cause" and "since"): the same state the alarm console and the customer's pages show.
 *
 * Visible words come from the template (data attributes, <template id="status-labels">), so
 * they are translated like the rest of the portal. window.keylineTopology exposes the state
 * for the browser tests.
 */
(function () {
  "use strict";

  const socketTransports = window.keylineCommon.socketTransports;

  var COLOURS = { up: "#16a34a", down: "#dc2626", degraded: "#f59e0b", unknown: "#9ca3af" };
  // A fault is drawn above what is healthy: where links cross, the red one is on top.
  var EDGE_Z = { up: 1, unknown: 2, degraded: 3, down: 4 };
  var container = document.getElementById("topology");
  var selector = document.getElementById("topology-view");
  var liveState = document.getElementById("live-state");
  var api = container.dataset.api;
  var room = roomOf();
  var labels = {};
  var words = document.getElementById("status-labels").content;
  words.querySelectorAll("[data-status]")
    .forEach(function (el) { labels[el.dataset.status] = el.textContent; });
  var beneath = words.querySelector("[data-beneath]");
  var sinceWords = words.querySelector("[data-since]");

  var state = { cy: null, socket: null, lastId: null, view: null, applied: 0, circuits: {},
                snapshots: 0, loads: 0, heard: null };
  window.keylineTopology = state;

  function style() {
    var byStatus = [];
    Object.keys(COLOURS).forEach(function (status) {
      byStatus.push({ selector: 'node[kind = "device"][status = "' + status + '"]',
                      style: { "background-color": COLOURS[status] } });
      byStatus.push({ selector: 'edge[status = "' + status + '"]',
                      style: { "line-color": COLOURS[status], "z-index": EDGE_Z[status] } });
    });
    return [
      { selector: "node", style: { label: "data(label)", "font-size": 11, "text-valign": "bottom",
                                   "text-margin-y": 4, width: 26, height: 26,
                                   "background-color": COLOURS.unknown } },
      { selector: 'node[role = "P"]', style: { shape: "hexagon", width: 34, height: 34 } },
      { selector: 'node[role = "PE"]', style: { shape: "round-rectangle" } },
      { selector: 'node[kind = "site"]', style: { "background-color": "#f1f5f9",
        "background-opacity": 0.6, "border-color": "#cbd5e1", "border-width": 1, shape: "round-rectangle",
        "text-valign": "top", "font-size": 10, color: "#64748b", padding: 12 } },
      // parallel links (two between the same devices) curve apart, each one visible
      { selector: "edge", style: { width: 2, "line-color": COLOURS.unknown, "curve-style": "bezier",
                                   "control-point-step-size": 36, "z-index": EDGE_Z.unknown } },
      // "[?...]": a link with no utilization (null) keeps width 2; "[utilization_pct >= 0]"
      // matched null too (null >= 0 in JavaScript) and mapData drew it 30 px wide
      { selector: "edge[?utilization_pct]",
        style: { width: "mapData(utilization_pct, 0, 100, 2, 12)" } },
      { selector: 'edge[known_from = "discovered"]', style: { "line-style": "dashed" } }
    ].concat(byStatus);
  }

  function pathText(circuit) {
    return circuit.hops.map(function (hop) {
      var node = state.cy && state.cy.getElementById(hop.device);
      return node && node.length ? node.data("label") : (hop.device_key || "?");
    }).join(" → ");
  }

  function renderCircuits(view) {
    var body = document.querySelector("#topology-circuits tbody");
    body.textContent = "";
    state.circuits = {};
    view.circuits.forEach(function (circuit) {
      var row = document.createElement("tr");
      row.dataset.circuit = circuit.id;
      var key = document.createElement("td");
      key.className = "key";
      key.textContent = circuit.key;
      var status = document.createElement("td");
      status.className = "service-state";
      var badge = document.createElement("span");
      var cause = document.createElement("div");
      cause.className = "desc service-cause";
      var since = document.createElement("div");
      since.className = "muted service-since";
      status.append(badge, cause, since);
      var path = document.createElement("td");
      path.className = "path";
      path.textContent = pathText(circuit);
      row.append(key, status, path);
      body.appendChild(row);
      state.circuits[circuit.id] = status;
      setCircuitStatus(circuit.id, circuit);
    });
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function formatTime(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return String(iso); }
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) + " UTC";
  }

  function stateLabel(status, underlying) {
    if (status === "maintenance" && underlying && beneath) {
      return beneath.textContent.replace("@STATE@", labels[underlying] || underlying);
    }
    return labels[status] || status;
  }

  // item: {status, underlying, cause, cause_text, since} (a view's circuit or a message's)
  function setCircuitStatus(id, item) {
    var cell = state.circuits[id];
    if (!cell) { return; }
    var badge = cell.firstChild;
    var underlying = item.underlying || "";
    badge.className = "badge status-" + item.status + (underlying ? " status-" + underlying : "");
    badge.dataset.status = item.status;
    badge.dataset.underlying = underlying;
    badge.textContent = stateLabel(item.status, underlying);
    // the cause in the viewer's language from its words as data (alarm_texts.js), else as sent
    cell.querySelector(".service-cause").textContent =
      window.keylineAlarmText(item.cause_text, item.cause);
    cell.querySelector(".service-since").textContent = item.since && sinceWords
      ? sinceWords.textContent.replace("@TIME@", formatTime(item.since)) : "";
  }

  function load(which) {
    var heard = [];  // the messages that arrive meanwhile, applied again on the new view
    state.heard = heard;
    return fetch(api + which, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("view " + which + ": HTTP " + response.status); }
        return response.json();
      })
      .then(function (view) {
        if (state.heard !== heard) { return view; }  // a later load is under way: its view wins
        state.heard = null;
        state.view = view;
        var elements = view.elements.nodes.concat(view.elements.edges);
        if (state.cy) {
          state.cy.elements().remove();
          state.cy.add(elements);
          state.cy.layout({ name: "preset", fit: true, padding: 30 }).run();
        } else {
          state.cy = cytoscape({ container: container, elements: elements, style: style(),
                                 layout: { name: "preset", fit: true, padding: 30 },
                                 wheelSensitivity: 0.3 });
        }
        document.getElementById("topology-title").textContent = view.title;
        renderCircuits(view);
        if (state.lastId === null || view.event_id > state.lastId) { state.lastId = view.event_id; }
        heard.forEach(applyStatuses);
        state.loads += 1;
        return view;
      }, function (error) {
        if (state.heard === heard) { state.heard = null; }
        throw error;
      });
  }

  // A snapshot names every device, link and circuit of the room: a drawn one it does not
  // name is no longer there (the topology changed while the page was away).
  function missingFrom(message) {
    var named = {};
    message.devices.concat(message.links, message.circuits)
      .forEach(function (item) { named[item.id] = true; });
    var gone = false;
    if (state.cy) {
      state.cy.elements().forEach(function (element) {
        var kind = element.data("kind");
        if ((element.isEdge() || kind === "device") && !named[element.id()]) { gone = true; }
      });
    }
    Object.keys(state.circuits).forEach(function (id) { if (!named[id]) { gone = true; } });
    return gone;
  }

  function apply(message) {
    if (state.heard) { state.heard.push(message); }
    if (message.snapshot) { state.snapshots += 1; }
    if (message.resync || (message.snapshot && missingFrom(message))) {
      load(selector.value);
    }
    applyStatuses(message);
    if (state.lastId === null || message.id > state.lastId) { state.lastId = message.id; }
    state.applied += 1;
  }

  // the statuses a message names; the same message applied twice changes nothing
  function applyStatuses(message) {
    var cy = state.cy;
    if (cy) {
      cy.batch(function () {
        message.devices.concat(message.links).forEach(function (item) {
          var element = cy.getElementById(item.id);
          if (!element.length) { return; }
          var data = {};
          if (item.status !== undefined) { data.status = item.status; }
          if (item.utilization_pct !== undefined) { data.utilization_pct = item.utilization_pct; }
          element.data(data);
        });
      });
    }
    message.circuits.forEach(function (item) { setCircuitStatus(item.id, item); });
  }

  function setLive(which) {
    if (liveState.dataset.state === "reload") { return; }  // final, see join
    liveState.dataset.state = which;
    liveState.textContent = liveState.dataset["label" + which.charAt(0).toUpperCase() + which.slice(1)];
  }

  function join() {
    var request = { room: room };
    if (state.lastId !== null) { request.after = state.lastId; }
    state.socket.emit("join", request, function (answer) {
      if (answer && answer.reload) {
        // joined too often (portal/live.py's budget): reconnecting would be refused too
        setLive("reload");
        state.socket.disconnect();
        return;
      }
      setLive(answer && answer.ok ? "live" : "offline");
    });
  }

  function connect() {
    var socket = io({ transports: socketTransports() });
    state.socket = socket;
    socket.on("connect", join);
    socket.on("disconnect", function () { setLive("offline"); });
    socket.on("connect_error", function () { setLive("offline"); });
    socket.on("status", apply);
  }

  // The room that follows the chosen view: "noc" for operators (the container's); for an
  // account manager, the room of the customer the view belongs to (the option's data-room).
  function roomOf() {
    var option = selector.options[selector.selectedIndex];
    return (option && option.dataset.room) || container.dataset.room;
  }

  selector.addEventListener("change", function () {
    load(selector.value).then(function () {
      var wanted = roomOf();
      if (wanted === room || !state.socket) { return; }
      room = wanted;  // a new socket, joined to the new room only (there is no "leave")
      state.socket.disconnect();
      connect();
    }, function (error) { console.error(error); });
  });
  load(selector.value).then(connect, function (error) {
    container.textContent = container.dataset.noData;
    console.error(error);
  });
}());
