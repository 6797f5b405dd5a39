/*
 * Keyline: what every page's script shares (loaded by base.html before the page's own
 * scripts, all `defer`, so it runs first): the Socket.IO transports the server allows, and
 * how a chart writes its values and times.
 *
 * window.keylineCommon = {socketTransports, formatValue, formatTime, valueAxis}.
 * No inline script: the Content-Security-Policy allows scripts from this site only.
 */
(function () {
  "use strict";

  // Socket.IO transports as the server allows them (base.html's meta, settings
  // server.websocket_only): WebSocket alone behind a proxy without sticky sessions.
  function socketTransports() {
    var meta = document.querySelector('meta[name="keyline-socket-transports"]');
    return (meta && meta.content ? meta.content : "websocket,polling").split(",");
  }

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
    if (unit === "%" || unit === "°C") {
      return value.toFixed(1) + " " + unit;
    }
    return value >= 100 ? value.toFixed(0) : value.toFixed(2);
  }

  function formatTime(ms, spanSeconds) {
    const lang = document.documentElement.lang || undefined;
    // beyond three months a day is detail enough, and the year tells them apart
    const options = spanSeconds > 90 * 86400
      ? {year: "numeric", month: "2-digit", day: "2-digit"}
      : spanSeconds > 86400
        ? {month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit"}
        : {hour: "2-digit", minute: "2-digit"};
    return new Date(ms).toLocaleString(lang, options);
  }

  // The value axis: whole bits per second (ticks at 0.2 bit/s all read "0 bit/s" or "1 bit/s"),
  // and with nothing to draw, 0 to 1 kbit/s rather than 0 to 1 (it read "1 bit/s, 1 bit/s");
  // the chart's note then says there is no data.
  function valueAxis(unit) {
    const axis = {beginAtZero: true, ticks: {callback: (value) => formatValue(value, unit)}};
    if (unit === "bit/s") {
      axis.suggestedMax = 1000;
      axis.ticks.precision = 0;
    }
    return axis;
  }

  window.keylineCommon = {
    socketTransports: socketTransports, formatValue: formatValue, formatTime: formatTime,
    valueAxis: valueAxis,
  };
})();
