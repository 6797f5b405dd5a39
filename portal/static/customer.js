/*
 * Keyline: the circuit page's browser code (portal/templates/customer/circuit.html).
 *
 * Two things are drawn here, both from data the server already scoped to the viewer:
 *
 * 1. Traffic charts (chart.js, served from /vendor). Each <canvas> names the metrics of its
 *    "in" and "out" lines (data-metric-in / data-metric-out); the section #charts names the
 *    API (/api/v1/samples) and the circuit's two end ports. For the chosen range (1 h, 24 h,
 *    7 d, 30 d) and end (A or Z), every chart asks the API for its two series, averaged by
 *    the server into at most POINTS buckets, so a 30-day chart costs the same as a 1-hour
 *    one. A metric the store has never seen answers 400 with field "metric": shown as no
 *    data. Answers to an older request (the user clicked again meanwhile) are dropped.
 *    Ranges whose samples the collector dropped (the API's "unknown": its spool was full
 *    while the store was away) are shaded grey, the line breaks there, and a note under the
 *    chart says what the shade means.
 *    After drawing, each canvas carries data-range, data-end, data-points (how many
 *    points it shows) and data-unknown (how many dropped ranges), which the browser test
 *    reads.
 *
 * 2. The route drawing (cytoscape, from /vendor): the elements of topology/views.py
 *    circuit_view, embedded as JSON in #route-data, laid out left to right in hop order,
 *    coloured by status.
 *
 * 3. Live status, on the circuit page and on the circuits list (#live-state names the room,
 *    the event id the page was rendered from and the page's state address; see
 *    portal/customer.py and portal/live.py). The page joins the customer's Socket.IO room
 *    (again after every reconnect: socket.io-client fires "connect" again); each join
 *    brings a snapshot ("snapshot": true) of every circuit's service state and every device
 *    and link of the customer's view as they are now, which replaces the page's, and the
 *    page then fetches its state (below), which replaces its alarms: whatever changed while
 *    it was away, nothing stale stays. Each later "status" message is applied at once:
 *    circuits' service states (the ones the alarm pipeline stored; the badges of
 *    [data-service] elements), and on the circuit page the route's devices and links
 *    (Cytoscape colours and the hop table); applying one twice changes nothing. Then the
 *    page fetches its state (JSON, scoped and labelled by the server): the service states
 *    with their causes and since when, the traffic (from samples, which are not events),
 *    the hops and elements (a reroute), the open alarms. A state older than a message already applied is
 *    not applied (another fetch follows). The state is also fetched every data-refresh-s
 *    seconds. Alarms and hops are built with DOM APIs (textContent), in the shape the
 *    templates render them.
 *    window.keylineCustomer exposes the live state for the browser tests.
 *
 * Visible words come from the page (data-label-*), so they follow the page's language.
 * No inline script: the Content-Security-Policy allows scripts from this site only.
 */
(function () {
  "use strict";

  const {socketTransports, formatValue, formatTime, valueAxis} = window.keylineCommon;

  const POINTS = 240;
  const STATUS_COLOURS = {up: "#15803d", down: "#b91c1c", degraded: "#d97706", unknown: "#94a3b8"};
  const LINE_COLOURS = {in: "#0f5da8", out: "#7c3aed"};

  // --- charts -------------------------------------------------------------------------------



  // Time ranges whose samples were dropped (the API's "unknown") drawn as grey bands behind
  // the lines: at 3 a.m. a flat line and no line must not look alike.
  const UNKNOWN_RANGES = {
    id: "unknownRanges",
    beforeDatasetsDraw(chart) {
      const ranges = chart.$keylineUnknown || [];
      const {ctx, chartArea, scales} = chart;
      ctx.save();
      ctx.fillStyle = "rgba(148, 163, 184, 0.35)";
      for (const range of ranges) {
        const left = Math.max(scales.x.getPixelForValue(range.start), chartArea.left);
        const right = Math.min(scales.x.getPixelForValue(range.end), chartArea.right);
        if (right >= left) {
          ctx.fillRect(left, chartArea.top, Math.max(right - left, 2), chartArea.height);
        }
      }
      ctx.restore();
    },
  };

  function setUpCharts(section) {
    if (typeof window.Chart === "undefined") {
      return;
    }
    const canvases = Array.from(section.querySelectorAll("canvas[data-metric-in]"));
    const labels = {in: section.dataset.labelIn, out: section.dataset.labelOut};
    const ports = {a: section.dataset.portA, z: section.dataset.portZ};
    const state = {range: null, seconds: 3600, end: "a", generation: 0, loads: 0};
    const charts = new Map();

    function chartFor(canvas) {
      if (charts.has(canvas)) {
        return charts.get(canvas);
      }
      const unit = canvas.dataset.unit;
      const chart = new window.Chart(canvas, {
        type: "line",
        plugins: [UNKNOWN_RANGES],
        data: {datasets: ["in", "out"].map((direction) => ({
          label: labels[direction], data: [], borderColor: LINE_COLOURS[direction],
          backgroundColor: LINE_COLOURS[direction], pointRadius: 0, borderWidth: 1.5,
          tension: 0.2, spanGaps: false,
        }))},
        options: {
          animation: false, responsive: true, maintainAspectRatio: false, parsing: false,
          interaction: {mode: "index", intersect: false},
          scales: {
            x: {type: "linear", ticks: {maxTicksLimit: 7,
              callback: (value) => formatTime(value, state.seconds)}},
            y: valueAxis(unit),
          },
          plugins: {tooltip: {callbacks: {
            title: (items) => items.length ? formatTime(items[0].parsed.x, state.seconds) : "",
            label: (item) => item.dataset.label + ": " + formatValue(item.parsed.y, unit),
          }}},
        },
      });
      charts.set(canvas, chart);
      return chart;
    }

    async function fetchSeries(portId, metric, start, end) {
      const query = new URLSearchParams({
        object_id: portId, metric: metric, start: start.toISOString(),
        end: end.toISOString(), points: String(POINTS),
      });
      const response = await fetch(section.dataset.api + "?" + query.toString(),
                                   {credentials: "same-origin", headers: {Accept: "application/json"}});
      if (response.status === 400) {
        const body = await response.json().catch(() => ({}));
        if (body.field === "metric") {
          return {points: [], unknown: []};  // a metric nothing has measured yet
        }
      }
      if (!response.ok) {
        throw new Error("samples: HTTP " + response.status);
      }
      const body = await response.json();
      return {
        points: body.points.map((point) => ({x: Date.parse(point.time), y: point.value})),
        unknown: (body.unknown || []).map((range) => ({
          start: Date.parse(range.start), end: Date.parse(range.end)})),
      };
    }

    // The line breaks inside every unknown range (a null point there: spanGaps is off), so
    // it never draws a slope across time nobody measured.
    function withBreaks(points, unknown) {
      if (unknown.length === 0) {
        return points;
      }
      const breaks = unknown.map((range) => ({x: (range.start + range.end) / 2, y: null}));
      return points.concat(breaks).sort((one, other) => one.x - other.x);
    }

    async function load() {
      const generation = ++state.generation;
      const end = new Date();
      const start = new Date(end.getTime() - state.seconds * 1000);
      const portId = ports[state.end];
      await Promise.all(canvases.map(async (canvas) => {
        const note = canvas.closest("figure").querySelector(".chart-note");
        let series;
        try {
          series = await Promise.all([canvas.dataset.metricIn, canvas.dataset.metricOut]
            .map((metric) => fetchSeries(portId, metric, start, end)));
        } catch (error) {
          if (generation === state.generation) {
            note.textContent = section.dataset.failed;
            note.hidden = false;
          }
          return;
        }
        if (generation !== state.generation) {
          return;  // the user chose another range or end meanwhile
        }
        const chart = chartFor(canvas);
        const unknown = series[0].unknown;  // the same ranges for both: one port's device
        chart.data.datasets[0].data = withBreaks(series[0].points, unknown);
        chart.data.datasets[1].data = withBreaks(series[1].points, unknown);
        chart.options.scales.x.min = start.getTime();
        chart.options.scales.x.max = end.getTime();
        chart.$keylineUnknown = unknown;
        chart.update();
        const count = series[0].points.length + series[1].points.length;
        note.textContent = section.dataset.noData;
        note.hidden = count > 0;
        const unknownNote = canvas.closest("figure").querySelector(".chart-unknown");
        unknownNote.textContent = section.dataset.unknown;
        unknownNote.hidden = unknown.length === 0;
        canvas.dataset.unknown = String(unknown.length);
        canvas.dataset.points = String(count);
        canvas.dataset.range = state.range;
        canvas.dataset.end = state.end;
      }));
      if (generation === state.generation) {
        state.loads += 1;
        section.dataset.loads = String(state.loads);
      }
    }

    function choose(selector, button) {
      section.querySelectorAll(selector).forEach((other) => {
        other.classList.toggle("current", other === button);
      });
    }

    section.querySelectorAll("button[data-range]").forEach((button) => {
      button.addEventListener("click", () => {
        choose("button[data-range]", button);
        state.range = button.dataset.range;
        state.seconds = Number(button.dataset.seconds);
        load();
      });
    });
    section.querySelectorAll("button[data-end]").forEach((button) => {
      button.addEventListener("click", () => {
        choose("button[data-end]", button);
        state.end = button.dataset.end;
        load();
      });
    });
    const first = section.querySelector("button[data-range].current")
      || section.querySelector("button[data-range]");
    state.range = first.dataset.range;
    state.seconds = Number(first.dataset.seconds);
    load();
  }

  // --- the route drawing --------------------------------------------------------------------

  function routeStyle() {
    const style = [
      {selector: "node", style: {
        "label": "data(label)", "font-size": 11, "text-valign": "bottom", "text-margin-y": 4,
        "background-color": STATUS_COLOURS.unknown, "width": 22, "height": 22, "color": "#1d2733"}},
      {selector: "edge", style: {"width": 3, "curve-style": "bezier",
                                 "line-color": STATUS_COLOURS.unknown}},
    ];
    // by selector rather than a function of the data, so that a status change recolours
    Object.keys(STATUS_COLOURS).forEach((status) => {
      style.push({selector: 'node[status = "' + status + '"]',
                  style: {"background-color": STATUS_COLOURS[status]}});
      style.push({selector: 'edge[status = "' + status + '"]',
                  style: {"line-color": STATUS_COLOURS[status]}});
    });
    style.push({selector: "node[kind = 'site']", style: {
      "background-color": "#f1f5f9", "border-width": 1, "border-color": "#cbd5e1",
      "text-valign": "top", "font-size": 10, "color": "#64748b", "shape": "round-rectangle"}});
    return style;
  }

  function layOut(cy) {
    const positions = {};
    cy.nodes("[kind = 'device']").forEach((node, index) => {
      positions[node.id()] = {x: index * 150, y: (index % 2) * 40};
    });
    cy.layout({name: "preset", positions: (node) => positions[node.id()], fit: true,
               padding: 30}).run();
  }

  function setUpRoute(container, data) {
    if (typeof window.cytoscape === "undefined" || !container || !data) {
      return null;
    }
    const elements = JSON.parse(data.textContent);
    const cy = window.cytoscape({
      container: container,
      elements: elements,
      layout: {name: "preset", fit: false},
      userZoomingEnabled: false, userPanningEnabled: false, boxSelectionEnabled: false,
      autoungrabify: true,
      style: routeStyle(),
    });
    layOut(cy);
    countRoute(container, cy);
    return cy;
  }

  function countRoute(container, cy) {
    container.dataset.nodes = String(cy.nodes("[kind = 'device']").length);
    container.dataset.edges = String(cy.edges().length);
  }

  // --- live status --------------------------------------------------------------------------

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = text;
    }
    return node;
  }

  function setBadge(span, status, label) {
    span.className = "status status-" + status;
    span.dataset.status = status;
    span.textContent = label;
  }

  function setCellBadge(cell, status, label) {
    let span = cell.querySelector("span.status");
    if (!span) {
      cell.textContent = "";
      span = element("span");
      cell.appendChild(span);
    }
    setBadge(span, status, label);
  }

  function readLabels(id) {
    const found = {};
    const template = document.getElementById(id);
    if (template) {
      template.content.querySelectorAll("[data-status]").forEach((el) => {
        found[el.dataset.status] = el.textContent;
      });
      const beneath = template.content.querySelector("[data-beneath]");
      if (beneath) {
        found["@beneath"] = beneath.textContent;
      }
    }
    return found;
  }

  function setUpLive(indicator, cy) {
    const labels = readLabels("status-labels");
    const serviceLabels = readLabels("service-labels");
    const section = document.querySelector("[data-circuit-id]");
    const alarmsSection = document.getElementById("alarms");
    const state = {
      socket: null, cy: cy, lastId: Number(indicator.dataset.eventId) || 0, messageId: 0,
      applied: 0, snapshots: 0, refreshes: 0, fetching: false, again: false,
      circuit: section ? section.dataset.circuitId : null,
    };
    window.keylineCustomer = state;

    function label(status) {
      return labels[status] || status;
    }

    function serviceLabel(status, underlying) {
      if (status === "maintenance" && underlying && serviceLabels["@beneath"]) {
        return serviceLabels["@beneath"].replace("@STATE@", serviceLabels[underlying] || underlying);
      }
      return serviceLabels[status] || status;
    }

    function notMeasured(cell) {
      cell.textContent = "";
      cell.appendChild(element("span", "muted", indicator.dataset.labelNotMeasured));
    }

    function setTraffic(cell, text) {
      if (!cell) {
        return;
      }
      if (text) {
        cell.textContent = text;
      } else {
        notMeasured(cell);
      }
    }

    // -- one message

    // Each returns whether the page shows that element (else the message does not concern
    // this page, and does not make it fetch its state).

    // A circuit's service state: {status, underlying, label, cause, cause_text, since_text};
    // from a live message only status and underlying (the words follow with the page's state).
    function setService(id, service) {
      const cells = document.querySelectorAll('[data-service="' + CSS.escape(id) + '"]');
      cells.forEach((cell) => {
        let span = cell.querySelector("span.status");
        if (!span) {
          span = element("span");
          cell.prepend(span);
        }
        const underlying = service.underlying || "";
        const changed = span.dataset.status !== service.status
          || (span.dataset.underlying || "") !== underlying;
        span.className = "status status-" + service.status
          + (underlying ? " status-" + underlying : "");
        span.dataset.status = service.status;
        span.dataset.underlying = underlying;
        span.textContent = service.label || serviceLabel(service.status, underlying);
        const cause = cell.querySelector(".service-cause");
        const since = cell.querySelector(".service-since");
        if (service.cause !== undefined) {
          if (cause) {  // in the viewer's language from its words as data (alarm_texts.js)
            cause.textContent = window.keylineAlarmText(service.cause_text, service.cause);
          }
          if (since) {
            since.textContent = service.since_text || "";
          }
        } else if (changed) {  // a new state: its old words no longer hold
          if (cause) {
            cause.textContent = "";
          }
          if (since) {
            since.textContent = "";
          }
        }
      });
      return cells.length > 0;
    }

    function setElement(id, status, text) {
      let shown = false;
      if (state.cy) {
        const found = state.cy.getElementById(id);
        if (found.length) {
          found.data("status", status);
          shown = true;
        }
      }
      const quoted = CSS.escape(id);
      const cells = document.querySelectorAll(
        'td[data-node="' + quoted + '"], td[data-link="' + quoted + '"]');
      cells.forEach((cell) => setCellBadge(cell, status, text));
      return shown || cells.length > 0;
    }

    function apply(message) {
      if (typeof message.id === "number") {
        state.messageId = Math.max(state.messageId, message.id);
        state.lastId = Math.max(state.lastId, message.id);
      }
      // a snapshot: the alarms, causes and traffic follow with the page's state, always
      let changed = Boolean(message.resync || message.snapshot)
        || (message.alarms || []).length > 0;
      if (message.snapshot) {
        state.snapshots += 1;
      }
      (message.circuits || []).forEach((item) => {
        changed = setService(item.id, {status: item.status, underlying: item.underlying})
          || changed;
      });
      (message.devices || []).concat(message.links || []).forEach((item) => {
        if (item.status !== undefined) {  // (a link's utilization alone: nothing shown here)
          changed = setElement(item.id, item.status, label(item.status)) || changed;
        }
      });
      state.applied += 1;
      indicator.dataset.applied = String(state.applied);
      if (changed) {
        refresh();
      }
    }

    // -- the page's state

    function alarmRow(alarm, withCircuits) {
      const row = element("tr");
      row.dataset.alarm = String(alarm.id);
      const severity = element("td");
      severity.appendChild(element("span", "severity severity-" + alarm.severity,
                                   alarm.severity_label));
      const what = element("td");
      const link = element("a", "alarm-link", alarm.type_label);
      link.href = alarm.href;
      what.appendChild(link);
      if (alarm.suppressed) {
        what.append(" ");
        what.appendChild(element("span", "tag", alarmsSection.dataset.labelMaintenance));
      }
      if (alarm.summary) {
        what.appendChild(element("div", "desc", alarm.summary));
      }
      const object = element("td", "object " + (alarm.own ? "own" : "operator"),
                             alarm.object_label);
      row.append(severity, what, object);
      if (withCircuits) {
        const hit = element("td", "key");
        alarm.circuits.forEach((circuit, index) => {
          if (index > 0) {
            hit.append(", ");
          }
          const a = element("a", null, circuit.key);
          a.href = circuit.href;
          hit.appendChild(a);
        });
        row.appendChild(hit);
      }
      const ack = element("td", "ack");
      if (alarm.acknowledged) {
        const span = element("span", "acked", alarmsSection.dataset.labelAcknowledged);
        span.title = alarm.acknowledged_at || "";
        ack.appendChild(span);
      } else {
        ack.appendChild(element("span", "muted", alarmsSection.dataset.labelNotAcknowledged));
      }
      row.append(element("td", "since", alarm.since), ack);
      return row;
    }

    function renderAlarms(alarms) {
      if (!alarmsSection) {
        return;
      }
      const table = document.getElementById("alarms-table");
      const body = table.querySelector("tbody");
      const withCircuits = body.dataset.withCircuits === "yes";
      body.replaceChildren(...alarms.map((alarm) => alarmRow(alarm, withCircuits)));
      table.hidden = alarms.length === 0;
      document.getElementById("alarms-empty").hidden = alarms.length > 0;
      document.getElementById("alarm-count").textContent = "(" + alarms.length + ")";
    }

    function hopRow(hop) {
      const row = element("tr");
      row.dataset.hop = String(hop.number);
      row.dataset.device = hop.device || "";
      const status = element("td");
      status.dataset.node = hop.node || "";
      status.appendChild(element("span"));
      setBadge(status.firstChild, hop.status, hop.status_label);
      const linkCell = element("td");
      linkCell.dataset.link = hop.link || "";
      if (hop.link_status) {
        linkCell.appendChild(element("span"));
        setBadge(linkCell.firstChild, hop.link_status, hop.link_label);
      } else {
        linkCell.appendChild(element("span", "muted", "-"));
      }
      row.append(element("td", "num", String(hop.number)), element("td", "key", hop.device || "-"),
                 element("td", null, hop.in_port || "-"), element("td", null, hop.out_port || "-"),
                 status, linkCell);
      return row;
    }

    function renderRoute(body) {
      const table = document.querySelector("table.hops tbody");
      if (!body.hops || !table) {
        if (body.hops && !table) {
          window.location.reload();  // a route where there was none: draw the page again
        }
        return;
      }
      table.replaceChildren(...body.hops.map(hopRow));
      if (state.cy && body.elements) {
        const cy = state.cy;
        const wanted = body.elements.nodes.concat(body.elements.edges);
        const ids = new Set(wanted.map((item) => item.data.id));
        const same = cy.elements().length === ids.size
          && cy.elements().every((item) => ids.has(item.id()));
        cy.batch(() => {
          if (same) {
            wanted.forEach((item) => cy.getElementById(item.data.id).data("status", item.data.status));
          } else {
            cy.elements().remove();
            cy.add(wanted);
          }
        });
        if (!same) {
          layOut(cy);
          countRoute(cy.container(), cy);
        }
      }
    }

    function applyState(body) {
      if (state.circuit !== null) {
        setService(body.id, body.service);
        ["a", "z"].forEach((end) => {
          setTraffic(document.querySelector('dd[data-traffic="' + end + '"]'), body.traffic[end]);
        });
        renderRoute(body);
      } else {
        const shown = Array.from(document.querySelectorAll("td[data-service]"))
          .map((cell) => cell.dataset.service).sort().join(" ");
        if (shown !== body.circuits.map((c) => c.id).sort().join(" ")) {
          window.location.reload();  // circuits came or went: draw the list again
          return;
        }
        body.circuits.forEach((circuit) => {
          const quoted = CSS.escape(circuit.id);
          setService(circuit.id, circuit.service);
          ["a", "z"].forEach((end) => {
            setTraffic(document.querySelector('td[data-traffic="' + quoted + ":" + end + '"]'),
                       circuit.traffic[end]);
          });
        });
      }
      renderAlarms(body.alarms);
      state.lastId = Math.max(state.lastId, body.event_id);
      state.refreshes += 1;
      indicator.dataset.refreshes = String(state.refreshes);
    }

    function refresh() {
      if (state.fetching) {
        state.again = true;  // fetch once more when this one is done
        return;
      }
      state.fetching = true;
      state.again = false;
      fetch(indicator.dataset.stateUrl, {credentials: "same-origin",
                                         headers: {Accept: "application/json"}})
        .then((response) => {
          if (!response.ok) {
            throw new Error("state: HTTP " + response.status);
          }
          return response.json();
        })
        .then((body) => {
          if (body.event_id >= state.messageId) {  // else older than a message: fetch again
            applyState(body);
          } else {
            state.again = true;
          }
        })
        .catch((error) => console.warn(error))
        .finally(() => {
          state.fetching = false;
          if (state.again) {
            refresh();
          }
        });
    }

    // -- the socket

    function setLive(which) {
      if (indicator.dataset.state === "reload") {
        return;  // final, see join
      }
      indicator.dataset.state = which;
      indicator.textContent = indicator.dataset["label" + which.charAt(0).toUpperCase()
                                                + which.slice(1)];
    }

    function join() {
      state.socket.emit("join", {room: indicator.dataset.room, after: state.lastId}, (answer) => {
        if (answer && answer.reload) {
          // joined too often (portal/live.py's budget): reconnecting would be refused too
          setLive("reload");
          state.socket.disconnect();
          return;
        }
        setLive(answer && answer.ok ? "live" : "offline");
      });
    }

    if (typeof window.io === "function") {
      const socket = window.io({transports: socketTransports()});
      state.socket = socket;
      socket.on("connect", join);
      socket.on("disconnect", () => setLive("offline"));
      socket.on("connect_error", () => setLive("offline"));
      socket.on("status", apply);
    }
    const every = Number(indicator.dataset.refreshS);
    if (every > 0) {
      window.setInterval(refresh, every * 1000);
    }
  }

  function start() {
    const section = document.getElementById("charts");
    if (section) {
      setUpCharts(section);
    }
    const cy = setUpRoute(document.getElementById("route-graph"),
                          document.getElementById("route-data"));
    const indicator = document.getElementById("live-state");
    if (indicator) {
      setUpLive(indicator, cy);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
