/*
 * The live alarm console (portal/templates/alarms/console.html, portal/alarms_views.py).
 *
 * The page is rendered by the server with the alarms as they were at event `data-after`.
 * This script joins the viewer's Socket.IO rooms (portal/live.py: "noc" for operators, the
 * customer's own room for a customer user, the managed customers' rooms for an account
 * manager; `data-rooms`), at load and again after every reconnect. Each join brings a
 * snapshot of the room ("snapshot": true): its active alarms and its circuits' states as
 * they are now. The snapshots replace the page's set: once every room has answered, a row
 * whose alarm is in no snapshot (nor heard of live since) leaves the list (with a filter
 * that shows cleared alarms, the list is fetched again instead, to show it cleared), so an
 * alarm cleared while the page was away disappears and none shows twice. Then the live
 * messages keep the list current; each is applied by alarm id, so applying one twice shows
 * the alarm once:
 *
 * - a new alarm that passes the page's filters (`data-filter-*`) is inserted where the
 *   server would have put it: newest first, a root cause (or lone alarm) as a group of its
 *   own, a symptom under its root cause's folded symptoms (<details>);
 * - a changed alarm has its row updated (severity, state, last seen and count,
 *   acknowledgement, maintenance), and moved when its root cause changed; one that no
 *   longer passes the filters leaves the list, except a cleared one, which stays marked
 *   cleared so the NOC sees it go;
 * - a message with `resync` makes the page fetch its own list again (no navigation), then
 *   apply on top of it every message heard meanwhile;
 * - an account manager's alarm may come from several customers' rooms ("room" of each
 *   message): the page keeps each room's share and shows their union of circuits; a
 *   snapshot that no longer names the alarm takes that room's share away;
 * - every row names the circuits its alarm impacts, within the viewer's scope, each with its
 *   service state as the alarm pipeline stored it (#console-circuits: the viewer's circuits
 *   and their states when the page was read); the messages' "circuits" (portal/live.py: the
 *   pipeline's "circuit.state" events) keep those states current, so an SNMP-silent device's
 *   alarm lists its circuits "unknown" and a service alarm's circuit shows "down".
 *
 * Rows are built with DOM APIs and textContent only: nothing received is parsed as HTML.
 * Visible words come from <template id="alarm-labels"> (translated like the rest of the
 * portal); an alarm's summary is rendered from its "text" (code and parameters) with the
 * templates the page carries (portal/static/alarm_texts.js), as the server renders its rows. window.keylineAlarms exposes the state for the browser tests.
 */
(function () {
  "use strict";

  const socketTransports = window.keylineCommon.socketTransports;

  var list = document.getElementById("alarm-list");
  if (!list) { return; }
  var liveState = document.getElementById("live-state");
  var labels = { severity: {}, type: {}, kind: {}, state: {}, text: {}, service: {} };
  var filters = {};
  var circuits = {};  // circuit id -> {id, key, href, status, underlying}
  var state = {
    socket: null, lastId: Number(list.dataset.after) || 0, applied: 0, resyncs: 0,
    snapshots: 0, rooms: (list.dataset.rooms || "").split(" ").filter(Boolean),
    alarms: {},   // alarm id -> the alarm as shown (its rooms' shares merged)
    shares: {},   // alarm id -> room -> the alarm as that room sent it
    pending: null,  // while the list is fetched again: the messages heard meanwhile
    round: null, roundDone: null
  };
  window.keylineAlarms = state;

  function readPage() {
    labels = { severity: {}, type: {}, kind: {}, state: {}, text: {}, service: {} };
    var template = document.getElementById("alarm-labels");
    if (template) {
      template.content.querySelectorAll("span").forEach(function (el) {
        ["severity", "type", "kind", "state", "text", "service"].forEach(function (what) {
          if (el.dataset[what] !== undefined) { labels[what][el.dataset[what]] = el.textContent; }
        });
      });
    }
    var data = document.getElementById("console-circuits");
    try { circuits = data ? JSON.parse(data.textContent) : {}; } catch (error) {
      circuits = {};
      console.error(error);
    }
    filters = {
      state: list.dataset.filterState || "active",
      severity: list.dataset.filterSeverity || "",
      customer: list.dataset.filterCustomer || "",
      acknowledged: list.dataset.filterAcknowledged || ""
    };
  }

  function table() { return list.querySelector("table.alarms"); }

  function text(key) { return labels.text[key] || key; }

  // --- filters ------------------------------------------------------------------------

  // a customer's copy says when, not by whom (portal/alarm_access.py)
  function acknowledged(alarm) {
    return !!(alarm.acknowledged || alarm.acknowledged_by || alarm.acknowledged_at);
  }

  function matches(alarm) {
    if (filters.state !== "all" && alarm.state !== filters.state) { return false; }
    if (filters.severity && alarm.severity !== filters.severity) { return false; }
    if (filters.customer) {
      var customers = alarm.impacted_customers || alarm.customers || [];
      if (customers.map(String).indexOf(filters.customer) < 0) { return false; }
    }
    var ack = filters.acknowledged;
    if (["true", "yes", "1"].indexOf(ack) >= 0 && !acknowledged(alarm)) { return false; }
    if (["false", "no", "0"].indexOf(ack) >= 0 && acknowledged(alarm)) { return false; }
    return true;
  }

  // --- building rows ------------------------------------------------------------------

  function el(tag, className, content) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (content !== undefined && content !== null) { node.textContent = String(content); }
    return node;
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function formatTime(iso) {
    if (!iso) { return "-"; }
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return String(iso); }
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) + " UTC";
  }

  function alarmUrl(id) { return list.dataset.alarmsUrl + "/" + encodeURIComponent(id); }

  // --- circuits' service states -------------------------------------------------------

  function serviceLabel(status, underlying) {
    if (status === "maintenance" && underlying && labels.text.beneath) {
      return labels.text.beneath.replace("@STATE@", labels.service[underlying] || underlying);
    }
    return labels.service[status] || status;
  }

  function setBadge(badge, circuit) {
    var underlying = circuit.underlying || "";
    badge.className = "status status-" + circuit.status + (underlying ? " status-" + underlying : "");
    badge.dataset.status = circuit.status;
    badge.dataset.underlying = underlying;
    badge.textContent = serviceLabel(circuit.status, underlying);
  }

  function impactedIds(alarm) {
    // the NOC's alarms carry impacted_circuits (ids); a customer room's, "circuit:<id>"
    var ids = alarm.impacted_circuits || (alarm.circuits || []).map(function (c) {
      return Number(String(c).split(":")[1]);
    });
    return ids.map(Number).filter(function (id) { return circuits[id]; })
      .sort(function (a, b) { return a - b; });
  }

  function impactedCircuits(alarm) {
    var ids = impactedIds(alarm);
    if (!ids.length) { return null; }
    var holder = el("div", "desc impacted-circuits");
    ids.forEach(function (id, index) {
      var circuit = circuits[id];
      if (index > 0) { holder.appendChild(document.createTextNode(", ")); }
      var link = el("a", "circuit-state");
      link.href = circuit.href;
      link.dataset.circuitState = String(id);
      link.appendChild(el("code", null, circuit.key));
      link.appendChild(document.createTextNode(" "));
      var badge = el("span");
      setBadge(badge, circuit);
      link.appendChild(badge);
      holder.appendChild(link);
    });
    return holder;
  }

  function applyCircuits(items) {
    items.forEach(function (item) {
      var id = Number(String(item.id).split(":")[1]);
      var circuit = circuits[id];
      if (!circuit) { return; }
      circuit.status = item.status;
      circuit.underlying = item.underlying || null;
      document.querySelectorAll('[data-circuit-state="' + id + '"] span.status').forEach(
        function (badge) { setBadge(badge, circuit); });
    });
  }

  function actionForm(alarm, action) {
    var form = el("form", "inline-action");
    form.method = "post";
    form.action = alarmUrl(alarm.id) + "/" + action;
    [["csrf_token", list.dataset.csrf], ["next", list.dataset.next]].forEach(function (pair) {
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = pair[0];
      input.value = pair[1] || "";
      form.appendChild(input);
    });
    var comment = document.createElement("input");
    comment.type = "text";
    comment.name = "comment";
    comment.placeholder = text("comment");
    comment.setAttribute("aria-label", text("comment"));
    comment.maxLength = 2000;
    var button = el("button", null, text(action));
    button.type = "submit";
    button.name = "action";
    button.value = action;
    form.append(comment, button);
    return form;
  }

  function actionsCell(alarm) {
    var cell = el("td", "actions");
    var impact = el("a", "impact-link", text("impact"));
    var url = new URL(window.location.href);
    url.searchParams.set("selected", alarm.id);
    url.hash = "impact";
    impact.href = url.pathname + url.search + url.hash;
    cell.appendChild(impact);
    if (list.dataset.mayAct === "true" && alarm.state === "active") {
      cell.appendChild(actionForm(alarm, acknowledged(alarm) ? "unacknowledge" : "acknowledge"));
    }
    return cell;
  }

  function buildRow(alarm, rootListed) {
    var row = el("tr", "alarm severity-row-" + alarm.severity);
    row.dataset.alarm = alarm.id;
    row.dataset.rootCause = alarm.root_cause_id || "";
    row.dataset.state = alarm.state;
    row.dataset.acknowledged = acknowledged(alarm) ? "true" : "false";
    if (String(alarm.id) === list.dataset.selected) { row.classList.add("selected"); }
    if (alarm.state === "cleared") { row.classList.add("live-cleared"); }

    var severity = el("td");
    severity.appendChild(el("span", "severity severity-" + alarm.severity,
                            labels.severity[alarm.severity] || alarm.severity));

    var what = el("td");
    var link = el("a", "alarm-link", (labels.type[alarm.type] || alarm.type) +
                  (alarm.qualifier ? " (" + alarm.qualifier + ")" : ""));
    link.href = alarmUrl(alarm.id);
    what.appendChild(link);
    // the summary in the viewer's language, from its words as data (alarm_texts.js)
    if (alarm.summary) {
      what.appendChild(el("div", "desc", window.keylineAlarmText(alarm.text, alarm.summary)));
    }
    var hit = impactedCircuits(alarm);
    if (hit) { what.appendChild(hit); }
    if (alarm.root_cause_id && !rootListed) { what.appendChild(symptomOf(alarm.root_cause_id)); }

    var object = el("td");
    var span = el("span", "object");
    var kind = alarm.object_kind;
    span.appendChild(document.createTextNode(kind ? (labels.kind[kind] || kind) : "-"));
    if (kind && alarm.label) {
      span.appendChild(document.createTextNode(" "));
      span.appendChild(el("code", null, alarm.label));
    } else if (kind && alarm.object_id !== undefined && alarm.object_id !== null) {
      span.appendChild(document.createTextNode(" "));
      span.appendChild(el("span", "muted", "#" + alarm.object_id));
    }
    object.appendChild(span);

    var first = el("td", "time", formatTime(alarm.first_seen));
    var last = el("td", "time", formatTime(alarm.last_seen || alarm.first_seen));
    if (alarm.count > 1) {
      last.appendChild(document.createTextNode(" "));
      last.appendChild(el("span", "muted", "×" + alarm.count));
    }

    var status = el("td");
    status.appendChild(el("span", "alarm-state state-" + alarm.state,
                          labels.state[alarm.state] || alarm.state));
    if (alarm.suppressed) {
      status.appendChild(document.createTextNode(" "));
      status.appendChild(el("span", "tag", text("maintenance")));
    }

    var ack = el("td");
    if (acknowledged(alarm)) {
      var acked = el("span", "acked", alarm.acknowledged_by
        ? text("acknowledged-by").replace("@USER@", alarm.acknowledged_by) : text("acknowledged"));
      acked.title = formatTime(alarm.acknowledged_at);
      ack.appendChild(acked);
      if (alarm.ack_comment) { ack.appendChild(el("div", "desc ack-note", alarm.ack_comment)); }
      if (alarm.ack_customer_note) {
        ack.appendChild(el("div", "desc ack-customer-note",
                           text("to-customers") + " " + alarm.ack_customer_note));
      }
    } else {
      ack.appendChild(el("span", "muted", text("not-acknowledged")));
    }
    row.append(severity, what, object, first, last, status, ack, actionsCell(alarm));
    return row;
  }

  function symptomOf(rootId) {
    var desc = el("div", "desc symptom-of", text("symptom-of") + " ");
    var link = el("a", null, "#" + rootId);
    link.href = alarmUrl(rootId);
    desc.appendChild(link);
    return desc;
  }

  // --- placing rows -------------------------------------------------------------------

  function findRow(id) {
    if (id === null || id === undefined || !/^\d+$/.test(String(id))) { return null; }
    return list.querySelector('tr.alarm[data-alarm="' + id + '"]');
  }

  function isHead(row) { return !!row && row.parentNode.classList.contains("alarm-group"); }

  function groupOf(row) { return row.parentNode; }

  function plural(key, n) {
    return text(n === 1 ? key + "-one" : key + "-other").replace(/\d+/, String(n));
  }

  function symptomsTable(group, create) {
    var details = group.querySelector("details.symptoms");
    if (!details && create) {
      var holder = el("tr", "symptoms-row");
      holder.appendChild(el("td"));
      var cell = el("td");
      cell.colSpan = 7;
      details = el("details", "symptoms");
      details.dataset.root = group.querySelector("tr.alarm").dataset.alarm;
      details.appendChild(el("summary"));
      details.appendChild(el("table", "alarms symptoms-table"));
      cell.appendChild(details);
      holder.appendChild(cell);
      group.appendChild(holder);
    }
    return details ? details.querySelector("table.symptoms-table") : null;
  }

  function recount(group) {
    var details = group.querySelector("details.symptoms");
    if (!details) { return; }
    var n = details.querySelectorAll("tr.alarm").length;
    if (n === 0) {
      details.closest("tr.symptoms-row").remove();
    } else {
      details.querySelector("summary").textContent = plural("symptoms", n);
    }
  }

  function insertByIdDesc(parent, node, id, idOf, before) {
    var children = Array.prototype.filter.call(parent.children, function (c) { return idOf(c) !== null; });
    for (var i = 0; i < children.length; i += 1) {
      if (idOf(children[i]) < id) { parent.insertBefore(node, children[i]); return; }
    }
    parent.insertBefore(node, before || null);
  }

  function rowId(node) {
    if (node.tagName === "TBODY" && node.classList.contains("alarm-group")) {
      var head = node.querySelector("tr.alarm");
      return head ? Number(head.dataset.alarm) : null;
    }
    if (node.tagName === "TR" && node.classList.contains("alarm")) { return Number(node.dataset.alarm); }
    return null;
  }

  function place(row) {
    var id = Number(row.dataset.alarm);
    var root = findRow(row.dataset.rootCause);
    if (root && isHead(root) && root !== row) {
      var symptoms = symptomsTable(groupOf(root), true);
      var body = symptoms.tBodies[0] || symptoms;
      insertByIdDesc(body, row, id, rowId);
      var desc = row.querySelector(".symptom-of");
      if (desc) { desc.remove(); }
      recount(groupOf(root));
      return;
    }
    if (row.dataset.rootCause && !row.querySelector(".symptom-of")) {
      row.children[1].appendChild(symptomOf(row.dataset.rootCause));
    }
    var group = el("tbody", "alarm-group");
    group.id = "group-" + id;
    group.appendChild(row);
    var t = table();
    insertByIdDesc(t, group, id, rowId);
    adopt(row);
  }

  function adopt(head) {
    // lone symptoms of this alarm, listed before it arrived, fold under it
    list.querySelectorAll('tbody.alarm-group > tr.alarm[data-root-cause="' + head.dataset.alarm + '"]')
      .forEach(function (lone) {
        var group = groupOf(lone);
        if (group.querySelector("details.symptoms")) { return; } // a root of its own: leave it
        group.remove();
        place(lone);
      });
  }

  function detach(row) {
    if (isHead(row)) {
      var group = groupOf(row);
      var symptoms = Array.prototype.slice.call(group.querySelectorAll("details.symptoms tr.alarm"));
      group.remove();
      symptoms.forEach(function (symptom) { symptom.remove(); place(symptom); });
    } else {
      var outer = row.closest("tbody.alarm-group");
      row.remove();
      if (outer) { recount(outer); }
    }
  }

  function refreshMeta() {
    var n = list.querySelectorAll("tr.alarm").length;
    var t = table();
    if (t) { t.hidden = n === 0; }
    var empty = list.querySelector("p.empty");
    if (empty) { empty.hidden = n > 0; }
    var count = document.getElementById("alarm-count");
    if (count) {
      count.textContent = (n === 1 ? count.dataset.one : count.dataset.other).replace(/\d+/, String(n));
    }
  }

  // --- applying messages --------------------------------------------------------------

  function merged(id, latest) {
    // an account manager hears of an alarm once per customer room: the union of the shares
    var shares = state.shares[id] || {};
    var alarm = Object.assign({}, latest);
    if (alarm.circuits) {
      var circuitSet = new Set();
      var customerSet = new Set();
      Object.keys(shares).forEach(function (room) {
        (shares[room].circuits || []).forEach(function (c) { circuitSet.add(c); });
        (shares[room].customers || []).forEach(function (c) { customerSet.add(c); });
      });
      alarm.circuits = Array.from(circuitSet).sort();
      alarm.customers = Array.from(customerSet);
    }
    return alarm;
  }

  function upsert(alarm, room) {
    if (alarm === null || alarm.id === undefined || !/^\d+$/.test(String(alarm.id))) { return; }
    if (alarm.state === "withdrawn") {  // it no longer hits this room's customer
      if (state.shares[alarm.id]) { delete state.shares[alarm.id][room || ""]; }
      if (state.shares[alarm.id] && Object.keys(state.shares[alarm.id]).length) {
        alarm = merged(alarm.id, state.alarms[alarm.id]);
        state.alarms[alarm.id] = alarm;
        show(alarm);
        return;
      }
      delete state.shares[alarm.id];
      delete state.alarms[alarm.id];
      var gone = findRow(alarm.id);
      if (gone) { detach(gone); refreshMeta(); }
      return;
    }
    state.shares[alarm.id] = state.shares[alarm.id] || {};
    state.shares[alarm.id][room || ""] = alarm;
    alarm = merged(alarm.id, alarm);
    state.alarms[alarm.id] = alarm;
    show(alarm);
  }

  function show(alarm) {
    var row = findRow(alarm.id);
    var ok = matches(alarm);
    if (!row) {
      if (!ok) { return; }
      var fresh = buildRow(alarm, !!findRow(alarm.root_cause_id));
      fresh.classList.add("live-new");
      place(fresh);
      return;
    }
    if (!ok && alarm.state !== "cleared") { detach(row); return; }
    var rebuilt = buildRow(alarm, !row.dataset.rootCause || !!row.closest("details.symptoms") ||
                                  !!findRow(alarm.root_cause_id));
    if (row.classList.contains("live-new")) { rebuilt.classList.add("live-new"); }
    var sameActions = row.dataset.state === rebuilt.dataset.state &&
                      row.dataset.acknowledged === rebuilt.dataset.acknowledged;
    var moved = (row.dataset.rootCause || "") !== (rebuilt.dataset.rootCause || "");
    row.className = rebuilt.className;
    ["rootCause", "state", "acknowledged"].forEach(function (k) { row.dataset[k] = rebuilt.dataset[k]; });
    for (var i = 0; i < 7; i += 1) { row.replaceChild(rebuilt.children[0], row.children[i]); }
    if (!sameActions) { row.replaceChild(rebuilt.children[0], row.children[7]); }
    if (moved) {
      var desc = row.querySelector(".symptom-of");
      if (desc) { desc.remove(); }
      detach(row);
      place(row);
    }
  }

  function forget(id) {
    delete state.alarms[id];
    delete state.shares[id];
  }

  function takeSnapshot(message) {
    // the room's alarms now: a share of this room the snapshot does not name is gone
    var room = message.room || "";
    var named = {};
    (message.alarms || []).forEach(function (alarm) { named[alarm.id] = true; });
    Object.keys(state.shares).forEach(function (id) {
      var shares = state.shares[id];
      if (!shares[room] || named[id]) { return; }
      delete shares[room];
      var left = Object.keys(shares);
      if (!left.length) {
        delete state.shares[id];
        delete state.alarms[id];
        return;
      }
      state.alarms[id] = merged(id, shares[left[0]]);
      show(state.alarms[id]);
    });
    var round = state.round;
    if (round) {
      round.rooms[room] = true;
      (message.alarms || []).forEach(function (alarm) { round.keep[alarm.id] = true; });
      if (message.alarms_complete === false && message.alarms.length) {
        // only the newest were sent: the older rows are left as they are
        var oldest = Math.min.apply(null, message.alarms.map(function (a) { return Number(a.id); }));
        round.floor = Math.max(round.floor, oldest);
      }
    }
  }

  function fullBelow() {
    // a list as long as the server's limit shows the newest alarms only: a snapshot's older
    // ones (below the oldest shown) stay out of it, as they did when the page was rendered
    var limit = Number(list.dataset.limit) || 0;
    var ids = Array.prototype.map.call(list.querySelectorAll("tr.alarm"),
                                       function (row) { return Number(row.dataset.alarm); });
    return limit && ids.length >= limit ? Math.min.apply(null, ids) : 0;
  }

  function finishRound(round) {
    // every room has sent its snapshot: a row none of them names (nor any message since)
    // shows an alarm no longer active, or no longer this viewer's
    var gone = false;
    Array.prototype.forEach.call(list.querySelectorAll("tr.alarm"), function (row) {
      var id = Number(row.dataset.alarm);
      if (round.keep[id] || id < round.floor) { return; }
      if (filters.state === "active") {
        if (row.isConnected) { detach(row); }
        forget(id);
      } else if (row.dataset.state === "active") {
        gone = true;  // cleared meanwhile: the list shows cleared alarms, fetch it again
      }
    });
    refreshMeta();
    if (gone) { resync(); }
  }

  function apply(message) {
    if (state.pending) { state.pending.push(message); }
    applyMessage(message, false);
  }

  function applyMessage(message, replayed) {
    if (message.resync && !replayed) { resync(); }
    if (message.snapshot) {
      state.snapshots += replayed ? 0 : 1;
      takeSnapshot(message);
    } else if (state.round) {
      (message.alarms || []).forEach(function (alarm) { state.round.keep[alarm.id] = true; });
    }
    applyCircuits(message.circuits || []);
    var floor = message.snapshot ? fullBelow() : 0;
    (message.alarms || []).forEach(function (alarm) {
      if (Number(alarm.id) < floor && !findRow(alarm.id)) { return; }  // beyond the page's limit
      upsert(alarm, message.room);
    });
    refreshMeta();
    if (message.id > state.lastId) { state.lastId = message.id; }
    if (!replayed) { state.applied += 1; }
  }

  function resync() {
    // the list again, fetched (no navigation), then what arrived meanwhile on top
    if (state.pending) { return; }
    state.pending = [];
    state.resyncs += 1;
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("alarm-list");
        if (!fresh) { throw new Error("no alarm list in the page"); }
        list.replaceChildren.apply(list, Array.prototype.map.call(fresh.childNodes, function (node) {
          return document.importNode(node, true);
        }));
        Object.keys(fresh.dataset).forEach(function (k) { list.dataset[k] = fresh.dataset[k]; });
        readPage();
        var missed = state.pending;
        state.pending = null;
        // heard while the page was fetched: newer than it, or equal
        missed.forEach(function (message) { applyMessage(message, true); });
        var round = state.roundDone;
        state.roundDone = null;
        if (round) { finishRound(round); }
        refreshMeta();
      })
      .catch(function (error) {
        state.pending = null;
        state.roundDone = null;
        console.error(error);
      });
  }

  // --- the socket ---------------------------------------------------------------------

  function setLive(which) {
    if (!liveState || liveState.dataset.state === "reload") { return; }  // final, see mustReload
    liveState.dataset.state = which;
    liveState.textContent = liveState.dataset["label" + which.charAt(0).toUpperCase() + which.slice(1)];
  }

  function join() {
    var round = { waiting: state.rooms.length, ok: true, rooms: {}, keep: {}, floor: 0 };
    state.round = round;
    state.rooms.forEach(function (room) {
      state.socket.emit("join", { room: room, after: state.lastId }, function (answer) {
        round.ok = round.ok && !!(answer && answer.ok);
        round.reload = round.reload || !!(answer && answer.reload);
        round.waiting -= 1;
        if (round.waiting > 0 || state.round !== round) { return; }
        state.round = null;
        if (round.reload) { mustReload(); return; }
        setLive(round.ok ? "live" : "offline");
        if (!round.ok) { return; }  // a room refused: leave the list as it is
        if (state.pending) {
          state.roundDone = round;  // once the list fetched meanwhile is in place
        } else {
          finishRound(round);
        }
      });
    });
  }

  // A join answered "reload": this connection joined too often (portal/live.py's budget, the
  // live.joins_per_window setting). Reconnecting would be refused the same way: stop, and
  // say so instead of looking merely offline.
  function mustReload() {
    setLive("reload");
    state.socket.disconnect();
  }

  function connect() {
    if (!state.rooms.length || typeof io === "undefined") {
      if (liveState) { liveState.hidden = true; }
      return;
    }
    var socket = io({ transports: socketTransports() });
    state.socket = socket;
    socket.on("connect", join);
    socket.on("disconnect", function () { setLive("offline"); });
    socket.on("connect_error", function () { setLive("offline"); });
    socket.on("status", apply);
  }

  readPage();
  connect();
}());
