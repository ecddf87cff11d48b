// The tidemark live page: picks series through the REST API, then streams their windows,
// anomaly scores, forecasts and alert changes over /ws/live and draws them with uPlot.
// window.tidemarkLive exposes counters so tests (and curious people) can see it working.
"use strict";

(() => {
  const MAX_CHARTS = 6;
  const ANOMALY_THRESHOLD = 0.8;
  const $ = (id) => document.getElementById(id);

  const state = {
    key: new URLSearchParams(location.search).get("key") || localStorage.getItem("tidemark-key") || "",
    series: [],          // series infos from /api/v1/series
    selected: [],        // chosen series keys
    windows: new Map(),  // key -> Map(start -> aggregates)
    anomalies: new Map(), // key -> Map(start -> score)
    forecasts: new Map(), // key -> Map(field|window_ms|start -> point)
    charts: new Map(),   // key -> {plot, card}
    alerts: new Map(),
    socket: null,
    resume: null,
    retry: 500,
    dirty: false,
  };
  const stats = { messages: 0, events: 0, windows: 0, points: 0, lastWindowStart: null, redraws: 0 };
  window.tidemarkLive = stats;

  function headers() {
    return state.key ? { Authorization: "Bearer " + state.key } : {};
  }

  function setStatus(kind, text) {
    $("status").dataset.state = kind;
    $("status-text").textContent = text;
  }

  async function api(path) {
    const response = await fetch(path, { headers: headers() });
    if (response.status === 401) {
      $("key-form").hidden = false;
      throw new Error("an API key is required");
    }
    if (!response.ok) {
      throw new Error(path + ": " + response.status);
    }
    return response.json();
  }

  function sizeLabel(ms) {
    const units = [[86400000, "d"], [3600000, "h"], [60000, "m"], [1000, "s"]];
    for (const [unit, suffix] of units) {
      if (ms % unit === 0) return ms / unit + suffix;
    }
    return ms + "ms";
  }

  function labelMs(label) {
    const match = /^(\d+)(ms|s|m|h|d)$/.exec(label);
    if (!match) return null;
    const unit = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000 }[match[2]];
    return Number(match[1]) * unit;
  }

  // --- discovery -------------------------------------------------------------------------

  async function discover() {
    const list = await api("/api/v1/series?limit=5000");
    state.series = list.series;
    const metricSelect = $("metric");
    const current = metricSelect.value;
    metricSelect.innerHTML = "";
    for (const metric of list.metrics) {
      metricSelect.add(new Option(metric, metric));
    }
    const preferred = ["api.request.latency_ms", "system.cpu_pct"].find((m) => list.metrics.includes(m));
    metricSelect.value = current && list.metrics.includes(current) ? current : preferred || list.metrics[0] || "";
    return list.metrics.length > 0;
  }

  function fillWindowsAndSeries(keepSelection) {
    const metric = $("metric").value;
    const ofMetric = state.series.filter((s) => s.metric === metric);
    const sizes = new Set();
    ofMetric.forEach((s) => Object.keys(s.latest).forEach((w) => sizes.add(w)));
    const windowSelect = $("window");
    const currentWindow = windowSelect.value;
    const sorted = [...sizes].sort((a, b) => labelMs(a) - labelMs(b));
    windowSelect.innerHTML = "";
    sorted.forEach((w) => windowSelect.add(new Option(w, w)));
    windowSelect.value = sorted.includes(currentWindow) ? currentWindow : sorted[0] || "";

    const list = $("series-list");
    list.innerHTML = "";
    if (!keepSelection) {
      state.selected = ofMetric.slice(0, MAX_CHARTS).map((s) => s.key);
    }
    for (const s of ofMetric) {
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = s.key;
      box.checked = state.selected.includes(s.key);
      box.addEventListener("change", () => {
        const chosen = [...list.querySelectorAll("input:checked")].map((b) => b.value);
        state.selected = chosen.slice(0, MAX_CHARTS);
        subscribe();
      });
      label.append(box, " " + tagText(s.tags));
      list.append(label);
    }
    $("series-count").textContent = "(" + state.selected.length + " of " + ofMetric.length + ")";
  }

  function tagText(tags) {
    const parts = Object.entries(tags).map(([k, v]) => k + "=" + v);
    return parts.length ? parts.join(" · ") : "(no tags)";
  }

  // --- the stream ------------------------------------------------------------------------

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const token = state.key ? "?access_token=" + encodeURIComponent(state.key) : "";
    const socket = new WebSocket(scheme + "//" + location.host + "/ws/live" + token);
    state.socket = socket;
    setStatus("connecting", "connecting…");
    socket.onopen = () => {
      state.retry = 500;
      subscribe();
    };
    socket.onmessage = (message) => receive(JSON.parse(message.data));
    socket.onclose = (event) => {
      if (state.socket !== socket) return;
      const why = event.reason ? " (" + event.reason + ")" : "";
      setStatus("closed", "disconnected" + why + "; reconnecting…");
      setTimeout(connect, state.retry);
      state.retry = Math.min(state.retry * 2, 10000);
    };
  }

  function subscribe() {
    const socket = state.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    const request = {
      type: "subscribe",
      series: state.selected,
      window: $("window").value || undefined,
      interval: $("interval").value,
      history: 120,
    };
    if (state.resume && state.resumeFor === subscriptionKey()) {
      request.resume = state.resume;
    } else {
      resetData();
    }
    state.resumeFor = subscriptionKey();
    socket.send(JSON.stringify(request));
  }

  function subscriptionKey() {
    return JSON.stringify([state.selected, $("window").value, $("interval").value]);
  }

  function resetData() {
    state.windows.clear();
    state.anomalies.clear();
    state.forecasts.clear();
    state.dirty = true;
  }

  function receive(message) {
    stats.messages += 1;
    switch (message.type) {
      case "subscribed":
        setStatus("live", message.resumed ? "live (resumed)" : "live");
        break;
      case "snapshot":
        resetData();
        message.windows.forEach(putWindow);
        message.anomalies.forEach(putAnomaly);
        message.forecasts.forEach(putForecast);
        state.alerts = new Map(message.alerts.map((a) => [a.id, a]));
        state.resume = message.resume;
        renderAlerts();
        break;
      case "events":
        for (const event of message.events) {
          stats.events += 1;
          if (event.type === "window") putWindow(event);
          else if (event.type === "anomaly") putAnomaly(event);
          else if (event.type === "forecast") putForecast(event);
          else if (event.type === "alert") putAlert(event);
        }
        state.resume = message.resume;
        break;
      case "heartbeat":
        state.resume = message.resume;
        break;
      case "error":
        setStatus("closed", "server: " + message.message);
        break;
    }
    $("meta").textContent = "events " + stats.events + " · resume " + (state.resume || "–");
  }

  function mapFor(maps, key) {
    let map = maps.get(key);
    if (!map) {
      map = new Map();
      maps.set(key, map);
    }
    return map;
  }

  function putWindow(w) {
    if (w.window_ms !== labelMs($("window").value)) return;
    mapFor(state.windows, w.series).set(w.window_start, w);
    stats.windows += 1;
    stats.lastWindowStart = Math.max(stats.lastWindowStart || 0, w.window_start);
    state.dirty = true;
  }

  function putAnomaly(a) {
    mapFor(state.anomalies, a.series).set(a.window_start, a);
    state.dirty = true;
  }

  function putForecast(f) {
    mapFor(state.forecasts, f.series).set(f.field + "|" + f.window_ms + "|" + f.window_start, f);
    state.dirty = true;
  }

  function putAlert(event) {
    if (event.state === "resolved") state.alerts.delete(event.alert.id);
    else state.alerts.set(event.alert.id, event.alert);
    renderAlerts();
  }

  // --- drawing ---------------------------------------------------------------------------

  function renderAlerts() {
    const list = $("alerts");
    list.innerHTML = "";
    if (state.alerts.size === 0) {
      list.innerHTML = '<li class="none">no active alerts</li>';
      return;
    }
    for (const alert of state.alerts.values()) {
      const item = document.createElement("li");
      if (alert.silenced_by) item.className = "silenced";
      const severity = document.createElement("span");
      severity.className = "sev " + alert.severity;
      severity.textContent = alert.severity;
      item.append(severity, alert.summary || alert.rule);
      if (alert.series && alert.series.length) item.title = alert.series.join("\n");
      list.append(item);
    }
  }

  function chartData(key) {
    const field = $("field").value;
    const windowMs = labelMs($("window").value);
    const windows = state.windows.get(key) || new Map();
    const forecasts = [...(state.forecasts.get(key) || new Map()).values()].filter(
      (f) => f.window_ms === windowMs && f.field === field,
    );
    const anomalies = state.anomalies.get(key) || new Map();
    const starts = new Set([...windows.keys(), ...forecasts.map((f) => f.window_start)]);
    const xs = [...starts].sort((a, b) => a - b);
    const byStart = new Map(forecasts.map((f) => [f.window_start, f]));
    const value = (w) => (w && w[field] !== undefined && w[field] !== null ? w[field] : null);
    const data = [
      xs.map((x) => x / 1000),
      xs.map((x) => value(windows.get(x))),
      xs.map((x) => (byStart.get(x) ? byStart.get(x).mean : null)),
      xs.map((x) => (byStart.get(x) ? byStart.get(x).lower95 : null)),
      xs.map((x) => (byStart.get(x) ? byStart.get(x).upper95 : null)),
      xs.map((x) => (byStart.get(x) ? byStart.get(x).lower80 : null)),
      xs.map((x) => (byStart.get(x) ? byStart.get(x).upper80 : null)),
      xs.map((x) => {
        const a = anomalies.get(x);
        if (!a || a.score < ANOMALY_THRESHOLD) return null;
        const v = value(windows.get(x));
        return v === null ? a.value : v;
      }),
    ];
    return { data, points: windows.size };
  }

  function makePlot(target, width) {
    const band = "rgba(147, 51, 234, 0.12)";
    const band80 = "rgba(147, 51, 234, 0.22)";
    return new uPlot(
      {
        width,
        height: 200,
        legend: { show: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true } },
        series: [
          {},
          { label: "value", stroke: "#2563eb", width: 2, spanGaps: true, points: { size: 4 } },
          { label: "forecast", stroke: "#9333ea", dash: [6, 4], width: 1.5 },
          { label: "lower95", stroke: "transparent" },
          { label: "upper95", stroke: "transparent" },
          { label: "lower80", stroke: "transparent" },
          { label: "upper80", stroke: "transparent" },
          {
            label: "anomaly",
            stroke: "#dc2626",
            paths: () => null,
            points: { show: true, size: 10, fill: "#dc2626", stroke: "#dc2626" },
          },
        ],
        bands: [
          { series: [4, 3], fill: band },
          { series: [6, 5], fill: band80 },
        ],
        axes: [{}, { size: 60 }],
      },
      [[], [], [], [], [], [], [], []],
      target,
    );
  }

  function render() {
    if (!state.dirty) return;
    state.dirty = false;
    const container = $("charts");
    for (const [key, chart] of state.charts) {
      if (!state.selected.includes(key)) {
        chart.plot.destroy();
        chart.card.remove();
        state.charts.delete(key);
      }
    }
    let points = 0;
    for (const key of state.selected) {
      let chart = state.charts.get(key);
      if (!chart) {
        const card = document.createElement("div");
        card.className = "card";
        const info = state.series.find((s) => s.key === key);
        const title = document.createElement("h3");
        const latest = document.createElement("span");
        latest.className = "latest";
        title.append(latest, info ? info.metric : key.split("|")[0]);
        const tags = document.createElement("div");
        tags.className = "tags";
        tags.textContent = info ? tagText(info.tags) : key;
        const target = document.createElement("div");
        card.append(title, tags, target);
        container.append(card);
        const plot = makePlot(target, Math.max(300, card.clientWidth - 26));
        new ResizeObserver(() => plot.setSize({ width: Math.max(300, card.clientWidth - 26), height: 200 })).observe(card);
        chart = { card, latest, plot };
        state.charts.set(key, chart);
      }
      const { data, points: n } = chartData(key);
      points += n;
      chart.plot.setData(data);
      const values = data[1].filter((v) => v !== null);
      chart.latest.textContent = values.length ? formatValue(values[values.length - 1]) : "–";
    }
    stats.points = points;
    stats.redraws += 1;
    $("empty").hidden = points > 0;
    document.body.dataset.points = String(points);
  }

  function formatValue(v) {
    const abs = Math.abs(v);
    if (abs >= 1e6) return (v / 1e6).toFixed(2) + "M";
    if (abs >= 1e3) return (v / 1e3).toFixed(2) + "k";
    return abs >= 100 ? v.toFixed(0) : v.toFixed(2);
  }

  // --- wiring ----------------------------------------------------------------------------

  async function start() {
    try {
      let found = await discover();
      while (!found) {
        setStatus("connecting", "waiting for the first windows to close…");
        await new Promise((resolve) => setTimeout(resolve, 2000));
        found = await discover();
      }
      fillWindowsAndSeries(false);
      connect();
    } catch (error) {
      setStatus("closed", error.message);
    }
  }

  $("metric").addEventListener("change", () => {
    fillWindowsAndSeries(false);
    subscribe();
  });
  $("window").addEventListener("change", () => subscribe());
  $("interval").addEventListener("change", () => subscribe());
  $("field").addEventListener("change", () => {
    state.dirty = true;
  });
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.key = $("key").value.trim();
    localStorage.setItem("tidemark-key", state.key);
    $("key-form").hidden = true;
    start();
  });
  setInterval(render, 250);
  setInterval(() => {
    api("/api/v1/alerts")
      .then((list) => {
        state.alerts = new Map(list.alerts.map((a) => [a.id, a]));
        renderAlerts();
      })
      .catch(() => {});
  }, 30000);
  start();
})();
