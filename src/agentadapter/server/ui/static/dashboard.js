// The dashboard's own script (no inline scripts: the pages' CSP allows only files from /ui/static).
// - A run page streams the run's events into its timeline with EventSource and, when the run ends,
//   tells the summary (an htmx fragment) to refresh at once.
// - The costs page draws spend per day and model with uPlot from the JSON the page carries.
// - The model catalog's filter box hides the rows that do not match.
"use strict";

(function () {
  function text(value) {
    if (value === null || value === undefined) return "";
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  function clip(value, length) {
    var s = text(value);
    return s.length > length ? s.slice(0, length - 1) + "…" : s;
  }

  function describe(type, data) {
    switch (type) {
      case "run_started": return "run started" + (data.strategy ? " (" + data.strategy + ")" : "");
      case "agent_started": return "started step " + text(data.step);
      case "tool_call": return "calls " + text(data.name || data.tool) + " " + clip(data.arguments, 200);
      case "tool_result": return "result of " + text(data.name || data.tool) + ": " + clip(data.content || data.result, 200);
      case "handoff": return "hands off to " + text(data.to_agent);
      case "guardrail": return "guardrail " + text(data.name) + (data.tripwire_triggered ? " tripped" : " passed");
      case "agent_retried": return "retried: " + clip(data.error && data.error.message || data.error, 200);
      case "agent_finished": {
        var usage = data.usage || {};
        return "finished · " + (usage.input_tokens || 0) + " in / " + (usage.output_tokens || 0) + " out tokens" +
          (data.cost_usd !== undefined ? " · $" + Number(data.cost_usd).toFixed(6) : "");
      }
      case "agent_failed": return "failed: " + clip(data.error && data.error.message || data.error, 300);
      case "agent_cancelled": return "cancelled: " + clip(data.reason, 200);
      case "message": return "message: " + clip(data.payload || data, 200);
      case "run_paused": return "waiting for approval: " + (data.pending || []).map(function (call) {
        return text(call.tool) + " (" + text(call.call_id) + ")";
      }).join(", ");
      case "run_resumed": return "resumed: " + Object.keys(data.approvals || {}).map(function (id) {
        var reason = (data.reasons || {})[id];
        return id + " " + (data.approvals[id] ? "approved" : "rejected") + (reason ? " (" + clip(reason, 200) + ")" : "");
      }).join(", ");
      case "run_finished": return "run " + text(data.status) + (data.cost_usd !== undefined ? " · $" + Number(data.cost_usd).toFixed(6) : "");
      default: return clip(data, 300);
    }
  }

  function startTimeline(list) {
    var state = document.getElementById("stream-state");
    var source = new EventSource(list.dataset.events);
    var streaming = {};  // agent -> the <li> its token deltas are appended to
    function add(type, agent, body) {
      var item = document.createElement("li");
      item.className = "event " + type;
      item.dataset.type = type;
      var label = document.createElement("span");
      label.className = "type";
      label.textContent = type.replace(/_/g, " ");
      var who = document.createElement("span");
      who.className = "agent";
      who.textContent = agent || "";
      var what = document.createElement("span");
      what.className = "what";
      what.textContent = body;
      item.append(label, who, what);
      list.appendChild(item);
      return what;
    }
    function handle(event) {
      var payload;
      try { payload = JSON.parse(event.data); } catch (e) { return; }
      var data = payload.data || {};
      if (event.type === "token") {
        var target = streaming[payload.agent];
        if (!target) target = streaming[payload.agent] = add("token", payload.agent, "");
        target.textContent += data.text || "";
        return;
      }
      if (event.type === "agent_finished" || event.type === "agent_failed") delete streaming[payload.agent];
      add(event.type, payload.agent, describe(event.type, data));
      if (event.type === "run_finished") {
        source.close();
        state.textContent = "run ended";
        document.body.dispatchEvent(new CustomEvent("run-ended"));
      }
    }
    ["run_started", "run_paused", "run_resumed", "agent_started", "token", "tool_call", "tool_result", "handoff",
     "guardrail", "message", "agent_retried", "agent_finished", "agent_failed", "agent_cancelled", "run_finished",
     "approval_requested", "approval_decided"].forEach(function (type) { source.addEventListener(type, handle); });
    source.onopen = function () { state.textContent = "live"; };
    source.addEventListener("error", function (event) {
      if (source.readyState === EventSource.CLOSED) {
        if (state.textContent !== "run ended") state.textContent = "stream closed";
      } else {
        state.textContent = "reconnecting…";
      }
    });
  }

  function drawCosts(holder, data) {
    var names = Object.keys(data.series);
    if (!names.length || typeof uPlot === "undefined") {
      holder.textContent = "No spend in this period.";
      return;
    }
    var palette = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#ca8a04"];
    var xs = data.days.map(function (day) { return Date.parse(day + "T00:00:00Z") / 1000; });
    var series = [{}].concat(names.map(function (name, i) {
      return { label: name, stroke: palette[i % palette.length], width: 2, points: { show: true },
               value: function (u, v) { return v === null ? "-" : "$" + v.toFixed(6); } };
    }));
    var columns = [xs].concat(names.map(function (name) { return data.series[name]; }));
    var width = Math.max(320, holder.clientWidth || 800);
    new uPlot({ width: width, height: 260, series: series,
                axes: [{}, { values: function (u, ticks) { return ticks.map(function (t) { return "$" + t.toFixed(4); }); }, size: 80 }],
                scales: { x: { time: true } } }, columns, holder);
  }

  function filterModels(box) {
    var rows = document.querySelectorAll("#catalog tbody tr");
    box.addEventListener("input", function () {
      var wanted = box.value.toLowerCase();
      rows.forEach(function (row) { row.hidden = wanted && row.cells[0].textContent.toLowerCase().indexOf(wanted) < 0; });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var timeline = document.getElementById("timeline");
    if (timeline) startTimeline(timeline);
    var chart = document.getElementById("cost-chart");
    var chartData = document.getElementById("cost-data");
    if (chart && chartData) drawCosts(chart, JSON.parse(chartData.textContent));
    var box = document.getElementById("model-filter");
    if (box) filterModels(box);
  });
})();
