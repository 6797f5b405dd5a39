/*
 * The alarm pipeline's words in the viewer's language, in the browser.
 *
 * An alarm's summary travels as English ("summary") and as data ("text": a code and its
 * parameters, alarms/texts.py). The page carries the templates of every code, translated by
 * the server for the viewer (<script type="application/json" id="alarm-texts">, from
 * portal/alarms_views.py alarm_text_catalog); this fills them in exactly as alarms.texts
 * `render` does on the server: a parameter that is a text is rendered the same way, a list
 * is its items joined by the code's separator ("; " unless the catalog names another). So a
 * live alarm reads like the page's own rows. Words it cannot render (no text, an unknown
 * code, a missing parameter) show the English as it came.
 *
 * window.keylineAlarmText(words, fallback) -> string; used by alarms.js and customer.js.
 */
(function () {
  "use strict";

  var catalog = null;

  function read() {
    if (catalog === null) {
      var block = document.getElementById("alarm-texts");
      try { catalog = block ? JSON.parse(block.textContent) : {}; } catch (error) {
        catalog = {};
        console.error(error);
      }
    }
    return catalog;
  }

  function value(item, separator) {
    if (Array.isArray(item)) {
      return item.map(function (one) { return value(one, read().separator || "; "); })
        .join(separator);
    }
    if (item !== null && typeof item === "object" && typeof item.code === "string") {
      return render(item);
    }
    return String(item);
  }

  function render(words) {
    var found = read();
    var templates = found.templates || {};
    if (!Object.prototype.hasOwnProperty.call(templates, words.code)) {
      throw new Error("no alarm text " + words.code);
    }
    var separator = (found.separators || {})[words.code] || found.separator || "; ";
    var params = words.params || {};
    return templates[words.code].replace(/%\((\w+)\)s/g, function (match, name) {
      if (!Object.prototype.hasOwnProperty.call(params, name)) {
        throw new Error("alarm text " + words.code + ": no parameter " + name);
      }
      return value(params[name], separator);
    });
  }

  window.keylineAlarmText = function (words, fallback) {
    if (words === null || typeof words !== "object" || typeof words.code !== "string") {
      return fallback || "";
    }
    try { return render(words); } catch (error) {
      console.error(error);
      return fallback || "";
    }
  };
}());
