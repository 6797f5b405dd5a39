/*
 * Keyline: the device page's browser code (portal/templates/devices/device.html,
 * portal/devices.py).
 *
 * 1. Health charts (chart.js, served from /vendor): each canvas of #health-charts names its
 *    metric (data-metric); for the chosen range (1 h, 24 h, 7 d, 30 d) each asks the REST
 *    API (/api/v1/samples, scoped to the viewer like the page) for the device's series,
 *    averaged by the server into at most POINTS buckets. A metric the store has never seen
 *    answers 400 with field "metric": shown as no data.
 *
 * 2. A port's traffic: a click on a row of the ports table opens #port-traffic for that
 *    port: in and out bit/s from the same API, and the port's withheld intervals of the
 *    range from the page's own /devices/<id>/ports/<port>/gaps (raw samples whose values
 *    are reason codes, named in words by the server). Each withheld interval is a marker at
 *    its time whose tooltip names the reason, and both lines are broken there (a null point:
 *    chart.js draws no line across it, spanGaps is off); a hole in the samples much longer
 *    than their usual spacing (a device that did not answer) breaks the lines too. The
 *    intervals are also listed under the chart.
 *
 * 3. The page's state (/devices/<id>/status: verdict, health figures, port cells) is
 *    fetched every refresh_s seconds and redrawn with DOM APIs in the shapes the template
 *    renders; a port added or removed reloads the page.
 *
 * After drawing, each canvas carries data-range and data-points (points drawn), and the
 * port chart data-port and data-gaps (markers drawn), which the browser tests read;
 * window.keylineDevice exposes the charts. Words come from the page's JSON block
 * (#device-config), in the page's language. No inline script: the Content-Security-Policy
 * allows scripts from this site only.
 */
(function () {
  "use strict";

  const {formatValue, formatTime, valueAxis} = window.keylineCommon;

  const POINTS = 240;
  const LINE_COLOURS = {in: "#0f5da8", out: "#7c3aed", health: "#0f766e"};
  const GAP_COLOUR = "#b91c1c";
  // a hole this many times the usual spacing of the points breaks the line
  const HOLE_FACTOR = 3;

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

  // --- data ---------------------------------------------------------------------------------

  async function fetchJson(url) {
    const response = await fetch(url, {credentials: "same-origin",
                                       headers: {Accept: "application/json"}});
    if (!response.ok) {
      const error = new Error(url + ": HTTP " + response.status);
      error.status = response.status;
      error.body = await response.json().catch(() => ({}));
      throw error;
    }
    return response.json();
  }

  async function fetchSeries(config, objectId, metric, start, end) {
    const query = new URLSearchParams({
      object_id: objectId, metric: metric, start: start.toISOString(),
      end: end.toISOString(), points: String(POINTS),
    });
    try {
      const body = await fetchJson(config.samples_url + "?" + query.toString());
      return body.points.map((point) => ({x: Date.parse(point.time), y: point.value}));
    } catch (error) {
      if (error.status === 400 && error.body && error.body.field === "metric") {
        return [];  // a metric nothing has measured yet
      }
      throw error;
    }
  }

  // Points sorted by time, with a null point wherever the line must not be drawn across:
  // at each time of `breaks`, and inside every hole much longer than the usual spacing.
  function withBreaks(points, breaks) {
    const merged = points.slice().sort((a, b) => a.x - b.x);
    const spacings = [];
    for (let i = 1; i < merged.length; i += 1) {
      spacings.push(merged[i].x - merged[i - 1].x);
    }
    const holes = [];
    if (spacings.length >= 2) {
      const usual = spacings.slice().sort((a, b) => a - b)[Math.floor(spacings.length / 2)];
      for (let i = 1; i < merged.length; i += 1) {
        if (usual > 0 && merged[i].x - merged[i - 1].x > HOLE_FACTOR * usual) {
          holes.push({x: (merged[i].x + merged[i - 1].x) / 2, y: null});
        }
      }
    }
    return merged.concat(holes, breaks.map((time) => ({x: time, y: null})))
      .sort((a, b) => a.x - b.x || (a.y === null) - (b.y === null));
  }

  // --- range buttons ------------------------------------------------------------------------

  function rangeControl(section, onChange) {
    const state = {range: null, seconds: 86400};
    function choose(button) {
      section.querySelectorAll("button[data-range]").forEach((other) => {
        other.classList.toggle("current", other === button);
      });
      state.range = button.dataset.range;
      state.seconds = Number(button.dataset.seconds);
    }
    section.querySelectorAll("button[data-range]").forEach((button) => {
      button.addEventListener("click", () => {
        choose(button);
        onChange();
      });
    });
    choose(section.querySelector("button[data-range].current")
           || section.querySelector("button[data-range]"));
    return state;
  }

  function showNote(canvas, text, visible) {
    const note = canvas.closest("figure").querySelector(".chart-note");
    note.textContent = text;
    note.hidden = !visible;
  }

  // --- health charts ------------------------------------------------------------------------

  function setUpHealth(section, config, charts) {
    const canvases = Array.from(section.querySelectorAll("canvas[data-metric]"));
    let generation = 0;
    const range = rangeControl(section, load);

    function chartFor(canvas) {
      if (charts.has(canvas.id)) {
        return charts.get(canvas.id);
      }
      const unit = canvas.dataset.unit;
      const chart = new window.Chart(canvas, {
        type: "line",
        data: {datasets: [{
          label: canvas.dataset.label, data: [], borderColor: LINE_COLOURS.health,
          backgroundColor: LINE_COLOURS.health, pointRadius: 0, borderWidth: 1.5,
          tension: 0.2, spanGaps: false,
        }]},
        options: {
          animation: false, responsive: true, maintainAspectRatio: false, parsing: false,
          interaction: {mode: "nearest", axis: "x", intersect: false},
          scales: {
            x: {type: "linear", ticks: {maxTicksLimit: 7,
              callback: (value) => formatTime(value, range.seconds)}},
            y: valueAxis(unit),
          },
          plugins: {legend: {display: false}, tooltip: {callbacks: {
            title: (items) => items.length ? formatTime(items[0].parsed.x, range.seconds) : "",
            label: (item) => item.dataset.label + ": " + formatValue(item.parsed.y, unit),
          }}},
        },
      });
      charts.set(canvas.id, chart);
      return chart;
    }

    async function load() {
      const mine = ++generation;
      const end = new Date();
      const start = new Date(end.getTime() - range.seconds * 1000);
      await Promise.all(canvases.map(async (canvas) => {
        let series;
        try {
          series = await fetchSeries(config, config.device_id, canvas.dataset.metric, start, end);
        } catch (error) {
          if (mine === generation) {
            showNote(canvas, config.labels.failed, true);
          }
          return;
        }
        if (mine !== generation) {
          return;  // another range was chosen meanwhile
        }
        const chart = chartFor(canvas);
        chart.data.datasets[0].data = withBreaks(series, []);
        chart.options.scales.x.min = start.getTime();
        chart.options.scales.x.max = end.getTime();
        chart.update();
        showNote(canvas, config.labels.no_data, series.length === 0);
        canvas.dataset.points = String(series.length);
        canvas.dataset.range = range.range;
      }));
    }

    load();
  }

  // --- a port's traffic ---------------------------------------------------------------------

  function setUpPortTraffic(section, config, charts) {
    const canvas = section.querySelector("canvas");
    const gapTable = section.querySelector("#gaps-table");
    const gapNote = section.querySelector("#gaps-note");
    const state = {port: null, gapsUrl: null, generation: 0};
    const range = rangeControl(section, () => load());
    const unit = "bit/s";
    let chart = null;

    function makeChart() {
      chart = new window.Chart(canvas, {
        type: "line",
        data: {datasets: [
          {label: config.labels.in, data: [], borderColor: LINE_COLOURS.in,
           backgroundColor: LINE_COLOURS.in, pointRadius: 0, borderWidth: 1.5, tension: 0.2,
           spanGaps: false},
          {label: config.labels.out, data: [], borderColor: LINE_COLOURS.out,
           backgroundColor: LINE_COLOURS.out, pointRadius: 0, borderWidth: 1.5, tension: 0.2,
           spanGaps: false},
          {label: config.labels.withheld, data: [], showLine: false, clip: false,
           borderColor: GAP_COLOUR, backgroundColor: GAP_COLOUR, pointStyle: "triangle",
           pointRadius: 6, pointHoverRadius: 8},
        ]},
        options: {
          animation: false, responsive: true, maintainAspectRatio: false, parsing: false,
          interaction: {mode: "nearest", axis: "x", intersect: false},
          scales: {
            x: {type: "linear", ticks: {maxTicksLimit: 7,
              callback: (value) => formatTime(value, range.seconds)}},
            y: valueAxis(unit),
          },
          plugins: {tooltip: {callbacks: {
            title: (items) => items.length ? formatTime(items[0].parsed.x, range.seconds) : "",
            label: (item) => (item.raw && item.raw.reason !== undefined
              ? config.labels.withheld + ": " + item.raw.reason
              : item.dataset.label + ": " + formatValue(item.parsed.y, unit)),
          }}},
        },
      });
      charts.set(canvas.id, chart);
    }

    function listGaps(body) {
      const rows = body.gaps.map((gap) => {
        const row = element("tr");
        row.dataset.code = String(gap.code);
        row.append(element("td", "since", gap.at), element("td", null, gap.reason));
        return row;
      });
      gapTable.querySelector("tbody").replaceChildren(...rows.reverse());  // newest first
      gapTable.hidden = rows.length === 0;
      gapNote.textContent = rows.length === 0 ? config.labels.no_gaps
        : (body.truncated ? config.labels.truncated : "");
    }

    async function load() {
      if (state.port === null) {
        return;
      }
      const mine = ++state.generation;
      const end = new Date();
      const start = new Date(end.getTime() - range.seconds * 1000);
      const span = new URLSearchParams({start: start.toISOString(), end: end.toISOString()});
      let series;
      let gaps;
      try {
        [series, gaps] = await Promise.all([
          Promise.all(["if_in_bps", "if_out_bps"].map(
            (metric) => fetchSeries(config, state.port, metric, start, end))),
          fetchJson(state.gapsUrl + "?" + span.toString()),
        ]);
      } catch (error) {
        if (mine === state.generation) {
          showNote(canvas, config.labels.failed, true);
        }
        return;
      }
      if (mine !== state.generation) {
        return;  // another port or range was chosen meanwhile
      }
      if (chart === null) {
        makeChart();
      }
      const times = gaps.gaps.map((gap) => Date.parse(gap.time));
      chart.data.datasets[0].data = withBreaks(series[0], times);
      chart.data.datasets[1].data = withBreaks(series[1], times);
      chart.data.datasets[2].data = gaps.gaps.map((gap) => ({
        x: Date.parse(gap.time), y: 0, code: gap.code, reason: gap.reason}));
      chart.options.scales.x.min = start.getTime();
      chart.options.scales.x.max = end.getTime();
      chart.update();
      const count = series[0].length + series[1].length;
      showNote(canvas, config.labels.no_data, count === 0 && times.length === 0);
      listGaps(gaps);
      canvas.dataset.points = String(count);
      canvas.dataset.gaps = String(times.length);
      canvas.dataset.range = range.range;
      canvas.dataset.port = String(state.port);
    }

    function open(row) {
      document.querySelectorAll("tr[data-port]").forEach((other) => {
        other.setAttribute("aria-selected", other === row ? "true" : "false");
      });
      state.port = Number(row.dataset.port);
      state.gapsUrl = row.dataset.gapsUrl;
      section.querySelector("#port-traffic-name").textContent = row.dataset.name;
      delete canvas.dataset.port;
      section.hidden = false;
      load();
    }

    document.querySelectorAll("tr[data-port]").forEach((row) => {
      row.addEventListener("click", (event) => {
        if (event.target.closest("a") && !event.target.closest("a[data-open-port]")) {
          return;
        }
        open(row);
      });
    });
  }

  // --- the page's state ---------------------------------------------------------------------

  function readingCell(cell, reading) {
    const span = reading ? element("span", null, reading.text) : element("span", "muted", "-");
    if (reading) {
      span.title = reading.at;
    }
    cell.replaceChildren(span);
  }

  function statusCell(cell, value, sinceWord) {
    if (!value) {
      cell.replaceChildren(element("span", "muted", "-"));
      return;
    }
    const span = element("span", "status status-" + value.status, value.label);
    span.dataset.value = value.value;
    span.title = sinceWord.replace("@TIME@", value.since);
    cell.replaceChildren(span);
  }

  function matchCell(cell, match) {
    const parts = [element("span", "match", match.text)];
    if (match.problem_label) {
      const problem = element("div", "match-problem status-down", match.problem_label);
      problem.dataset.problem = match.problem;
      parts.push(problem, element("div", "desc", match.message));
    }
    cell.replaceChildren(...parts);
  }

  function setUpRefresh(config) {
    const page = document.getElementById("device");
    const state = {refreshes: 0, fetching: false};

    function apply(body) {
      const verdict = body.verdict;
      const cell = document.getElementById("verdict");
      cell.dataset.verdict = verdict.state;
      const badge = cell.querySelector("span.status");
      badge.className = "status status-" + verdict.status;
      badge.textContent = verdict.label;
      document.getElementById("verdict-since").textContent = verdict.since_text || "";
      document.getElementById("verdict-reason").textContent = verdict.reason || "-";
      document.getElementById("verdict-hint").textContent = verdict.hint || "-";
      document.getElementById("last-poll").textContent = verdict.last_poll || "-";
      document.getElementById("ports-stale").hidden = !body.ports_stale;
      Object.entries(body.health).forEach(([metric, figure]) => {
        const dd = document.querySelector('dd[data-health="' + CSS.escape(metric) + '"]');
        if (dd) {
          readingCell(dd, figure.reading);
        }
      });
      const shown = Array.from(document.querySelectorAll("tr[data-port]"))
        .map((row) => row.dataset.port).sort().join(" ");
      if (shown !== body.ports.map((port) => String(port.id)).sort().join(" ")) {
        window.location.reload();  // ports came or went: draw the page again
        return;
      }
      body.ports.forEach((port) => {
        const row = document.querySelector('tr[data-port="' + port.id + '"]');
        const field = (name) => row.querySelector('td[data-field="' + name + '"]');
        matchCell(field("match"), port.match);
        statusCell(field("admin"), port.admin, config.labels.since);
        statusCell(field("oper"), port.oper, config.labels.since);
        ["rx_dbm", "tx_dbm", "in_bps", "out_bps"].forEach((name) => {
          readingCell(field(name), port[name]);
        });
        field("gaps_24h").textContent = String(port.gaps_24h);
      });
      state.refreshes += 1;
      page.dataset.refreshes = String(state.refreshes);
    }

    function refresh() {
      if (state.fetching) {
        return;
      }
      state.fetching = true;
      fetchJson(config.state_url)
        .then(apply)
        .catch((error) => console.warn(error))
        .finally(() => {
          state.fetching = false;
        });
    }

    const every = Number(config.refresh_s);
    if (every > 0) {
      window.setInterval(refresh, every * 1000);
    }
    return {refresh: refresh};
  }

  function start() {
    const data = document.getElementById("device-config");
    if (!data) {
      return;
    }
    const config = JSON.parse(data.textContent);
    const charts = new Map();
    const live = setUpRefresh(config);
    window.keylineDevice = {charts: charts, refresh: live.refresh};
    if (typeof window.Chart === "undefined") {
      return;
    }
    const health = document.getElementById("health-charts");
    if (health) {
      setUpHealth(health, config, charts);
    }
    const traffic = document.getElementById("port-traffic");
    if (traffic) {
      setUpPortTraffic(traffic, config, charts);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
