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
 *    After drawing, each canvas carries data-range, data-end and data-points (how many
 *    points it shows), which the browser test reads.
 *
 * 2. The route drawing (cytoscape, from /vendor): the elements of topology/views.py
 *    circuit_view, embedded as JSON in #route-data, laid out left to right in hop order,
 *    coloured by status.
 *
 * Visible words come from the page (data-label-*), so they follow the page's language.
 * No inline script: the Content-Security-Policy allows scripts from this site only.
 */
(function () {
  "use strict";

  const POINTS = 240;
  const STATUS_COLOURS = {up: "#15803d", down: "#b91c1c", degraded: "#d97706", unknown: "#94a3b8"};
  const LINE_COLOURS = {in: "#0f5da8", out: "#7c3aed"};

  // --- formatting ---------------------------------------------------------------------------

  function formatValue(value, unit) {
    if (value === null || value === undefined || Number.isNaN(value)) {
      return "-";
    }
    if (unit === "bit/s") {
      const steps = [[1e12, "Tbit/s"], [1e9, "Gbit/s"], [1e6, "Mbit/s"], [1e3, "kbit/s"]];
      for (const [size, name] of steps) {
        if (Math.abs(value) >= size) {
          return (value / size).toFixed(value / size >= 100 ? 0 : 1) + " " + name;
        }
      }
      return value.toFixed(0) + " bit/s";
    }
    if (unit === "%") {
      return value.toFixed(1) + " %";
    }
    return value >= 100 ? value.toFixed(0) : value.toFixed(2);
  }

  function formatTime(ms, spanSeconds) {
    const lang = document.documentElement.lang || undefined;
    const options = spanSeconds > 86400
      ? {month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit"}
      : {hour: "2-digit", minute: "2-digit"};
    return new Date(ms).toLocaleString(lang, options);
  }

  // --- charts -------------------------------------------------------------------------------

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
            y: {beginAtZero: true, ticks: {callback: (value) => formatValue(value, unit)}},
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
          return [];  // a metric nothing has measured yet
        }
      }
      if (!response.ok) {
        throw new Error("samples: HTTP " + response.status);
      }
      const body = await response.json();
      return body.points.map((point) => ({x: Date.parse(point.time), y: point.value}));
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
        chart.data.datasets[0].data = series[0];
        chart.data.datasets[1].data = series[1];
        chart.options.scales.x.min = start.getTime();
        chart.options.scales.x.max = end.getTime();
        chart.update();
        const count = series[0].length + series[1].length;
        note.textContent = section.dataset.noData;
        note.hidden = count > 0;
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

  function setUpRoute(container, data) {
    if (typeof window.cytoscape === "undefined" || !container || !data) {
      return;
    }
    const elements = JSON.parse(data.textContent);
    const positions = {};
    elements.nodes.filter((n) => n.data.kind === "device").forEach((node, index) => {
      positions[node.data.id] = {x: index * 150, y: (index % 2) * 40};
    });
    const cy = window.cytoscape({
      container: container,
      elements: elements,
      layout: {name: "preset", positions: (node) => positions[node.id()], fit: true, padding: 30},
      userZoomingEnabled: false, userPanningEnabled: false, boxSelectionEnabled: false,
      autoungrabify: true,
      style: [
        {selector: "node", style: {
          "label": "data(label)", "font-size": 11, "text-valign": "bottom", "text-margin-y": 4,
          "background-color": (node) => STATUS_COLOURS[node.data("status")] || STATUS_COLOURS.unknown,
          "width": 22, "height": 22, "color": "#1d2733"}},
        {selector: "node[kind = 'site']", style: {
          "background-color": "#f1f5f9", "border-width": 1, "border-color": "#cbd5e1",
          "text-valign": "top", "font-size": 10, "color": "#64748b", "shape": "round-rectangle"}},
        {selector: "edge", style: {
          "width": 3, "curve-style": "bezier",
          "line-color": (edge) => STATUS_COLOURS[edge.data("status")] || STATUS_COLOURS.unknown}},
      ],
    });
    container.dataset.nodes = String(cy.nodes("[kind = 'device']").length);
    container.dataset.edges = String(cy.edges().length);
  }

  function start() {
    const section = document.getElementById("charts");
    if (section) {
      setUpCharts(section);
    }
    setUpRoute(document.getElementById("route-graph"), document.getElementById("route-data"));
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
