// The bizfed health dashboard: polls /dashboard/state and redraws tiles and charts; no libraries.
"use strict";

(() => {
  const POLL_MS = 2000;
  const HIDDEN_POLL_MS = 10000;
  const HISTORY_MS = 5 * 60 * 1000;
  const SOURCES = { warehouse: "Warehouse", sales: "Sales", accounting: "Accounting" };
  const SVG_NS = "http://www.w3.org/2000/svg";
  const LABELS = { up: "up", degraded: "degraded", down: "down", off: "off", unknown: "unknown" };

  // The key comes from the page URL and is only ever sent in the Authorization header.
  const key = new URLSearchParams(window.location.search).get("key") || "";
  const samples = [];
  let timer = null;

  function el(root, selector) {
    return root.querySelector(selector);
  }

  function setText(node, text) {
    if (node && node.textContent !== text) node.textContent = text;
  }

  function svg(name, attrs) {
    const node = document.createElementNS(SVG_NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  // Shapes differ by state (circle+tick, triangle+bang, octagon+cross) so colour is never the only cue.
  function icon(state) {
    const box = svg("svg", { viewBox: "0 0 20 20", focusable: "false" });
    const common = { fill: "none", stroke: "currentColor", "stroke-width": 2, "stroke-linecap": "round" };
    if (state === "up") {
      box.append(svg("circle", { cx: 10, cy: 10, r: 8.5, ...common }));
      box.append(svg("path", { d: "M6 10.5l2.7 2.7L14.2 7.4", ...common }));
    } else if (state === "degraded") {
      box.append(svg("path", { d: "M10 2L18.5 17.5H1.5Z", ...common, "stroke-linejoin": "round" }));
      box.append(svg("path", { d: "M10 8v4.2M10 14.8v.2", ...common }));
    } else if (state === "down") {
      box.append(svg("path", { d: "M6.5 1.5h7l5 5v7l-5 5h-7l-5-5v-7z", ...common, "stroke-linejoin": "round" }));
      box.append(svg("path", { d: "M7 7l6 6M13 7l-6 6", ...common }));
    } else {
      box.append(svg("circle", { cx: 10, cy: 10, r: 8.5, ...common, "stroke-dasharray": "3 3" }));
    }
    return box;
  }

  function setState(tile, state, reason) {
    const label = LABELS[state] || "unknown";
    if (tile.dataset.state !== state || !el(tile, ".icon").firstChild) {
      tile.dataset.state = state;
      el(tile, ".icon").replaceChildren(icon(state));
    }
    setText(el(tile, ".state-text"), label);
    setText(el(tile, ".reason"), reason || "");
  }

  function field(tile, name, text) {
    setText(el(tile, `[data-field="${name}"]`), text);
  }

  function ms(value) {
    if (value === null || value === undefined) return "–";
    return value < 10 ? `${value.toFixed(1)} ms` : `${Math.round(value)} ms`;
  }

  function percent(value) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    return `${(value * 100).toFixed(value > 0 && value < 0.1 ? 1 : 0)} %`;
  }

  // Short enough for the chart's axis at any value: 0.05, 0.5, 6.3, 42, 120, 1.2k, 15k, 3M.
  function compact(value) {
    if (value === null || value === undefined || !Number.isFinite(value)) return "–";
    let v = Math.abs(value);
    let suffix = "";
    for (const next of ["k", "M", "G"]) {
      if (v < 999.5) break;
      v /= 1000;
      suffix = next;
    }
    let text;
    if (v === 0 || v >= 9.95) text = String(Math.round(v));
    else if (v >= 1) text = v.toFixed(1).replace(/\.0$/, "");
    else text = String(Number(v.toPrecision(2)));
    return `${value < 0 ? "-" : ""}${text}${suffix}`;
  }

  function perSecond(value) {
    return `${compact(value)}/s`;
  }

  function millis(value) {
    return value >= 1000 ? `${compact(value / 1000)} s` : `${compact(value)} ms`;
  }

  function clock(iso) {
    const when = new Date(iso);
    const time = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
    return Date.now() - when.getTime() < 20 * 3600 * 1000 ? time : `${when.toISOString().slice(0, 10)} ${time}`;
  }

  function duration(millis) {
    return millis >= 120000 ? `${Math.round(millis / 60000)} min` : `${Math.max(1, Math.round(millis / 1000))} s`;
  }

  function ago(iso) {
    if (!iso) return "never";
    const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (seconds < 60) return `${Math.round(seconds)} s ago`;
    if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
    return new Date(iso).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  function renderSource(name, s) {
    const tile = el(document, `[data-tile="${name}"]`);
    if (!tile) return;
    if (!s) {
      setState(tile, "unknown", "not reported");
      return;
    }
    setState(tile, s.status, s.reason);
    field(tile, "breaker", s.breaker || "–");
    // null, not 0: this key's role may not see the source's activity (Accounting for a reader).
    const hidden = s.calls === null;
    field(tile, "latency", hidden ? "not shown to your role" : s.calls ? `${ms(s.p50_ms)} / ${ms(s.p95_ms)}` : "no calls yet");
    field(tile, "error_rate", hidden ? "–" : s.calls ? `${percent(s.error_rate)} of ${s.calls} calls` : "–");
    field(tile, "last_success", ago(s.last_success));
    // During an outage, say where answers come from and since when, not just when the source last answered.
    const outage = el(tile, '[data-field="outage"]');
    if (outage) {
      let text = "";
      if (s.outage_since) {
        const how = s.serving_from_cache ? "Serving from cache" : "Failing";
        text = `${how} since ${clock(s.outage_since)} (${ago(s.outage_since)})`;
      }
      setText(outage, text);
      outage.hidden = !text;
    }
    field(tile, "last_error", s.last_error ? `${s.last_error} (${ago(s.last_error_at)})` : "none");
    field(tile, "changes", changes(s.changes));
    field(tile, "last_change", s.changes ? ago(s.changes.last_change_at) : "–");
  }

  // How this source's changes reach the cache: "log · watching · lag 0.4 s".
  function changes(c) {
    if (!c) return "not shown";
    if (c.state === "off" || c.state === "unwatched") return c.state === "off" ? "capture off" : "not watched";
    const parts = [c.mode || "–", c.state];
    if (c.lag_s !== null && c.lag_s !== undefined) parts.push(`lag ${c.lag_s < 10 ? c.lag_s.toFixed(1) : Math.round(c.lag_s)} s`);
    if (c.state === "failing" && c.error) parts.push(c.error);
    return parts.join(" · ");
  }

  // Ratios over the samples of the last 5 min (the server's history, then this page's); else the server's totals.
  function cacheWindow() {
    const last = samples[samples.length - 1];
    if (!last || !last.cache) return null;
    let first = samples[0];
    const sum = (c) => c.hit + c.miss + c.stale + c.bypass;
    if (!first.cache || sum(last.cache) - sum(first.cache) <= 0) first = null;
    const d = {};
    for (const k of ["hit", "miss", "stale", "bypass"]) d[k] = last.cache[k] - (first ? first.cache[k] : 0);
    const total = sum(d);
    const span = first ? `last ${duration(last.t - first.t)}` : "since start";
    return { d, total, span };
  }

  function renderCache(c) {
    const tile = el(document, '[data-tile="cache"]');
    if (!c) return;
    setState(tile, c.status, c.reason);
    const w = cacheWindow();
    if (!w || w.total === 0) {
      field(tile, "hit_ratio", "no lookups yet");
      field(tile, "stale_rate", "–");
      field(tile, "bypass_rate", "–");
    } else {
      field(tile, "hit_ratio", `${percent(w.d.hit / w.total)} (${w.span})`);
      field(tile, "stale_rate", percent(w.d.stale / w.total));
      field(tile, "bypass_rate", percent(w.d.bypass / w.total));
    }
    field(tile, "ping", c.status === "off" ? "–" : ms(c.ping_ms));
    field(tile, "last_error", c.last_error ? `${c.last_error} (${ago(c.last_error_at)})` : "none");
  }

  function quantile(buckets, q) {
    const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
    if (total <= 0) return null;
    const want = q * total;
    let prevLe = 0;
    let prevCount = 0;
    for (const [le, count] of buckets) {
      if (count >= want) {
        const within = count - prevCount;
        return within > 0 ? prevLe + ((le - prevLe) * (want - prevCount)) / within : le;
      }
      prevLe = le;
      prevCount = count;
    }
    return prevLe;
  }

  // Rates and latencies between consecutive samples; a counter that went down means the server restarted.
  function series() {
    const rate = [];
    const avg = [];
    const p95 = [];
    for (let i = 1; i < samples.length; i += 1) {
      const a = samples[i - 1];
      const b = samples[i];
      const dt = (b.t - a.t) / 1000;
      const dn = b.req.count - a.req.count;
      if (dt <= 0 || dn < 0) continue;
      rate.push([b.t, dn / dt]);
      if (dn > 0) {
        avg.push([b.t, ((b.req.sum_s - a.req.sum_s) / dn) * 1000]);
        const deltas = b.req.buckets.map(([le, n], j) => [le, n - ((a.req.buckets[j] || [le, 0])[1])]);
        deltas.push([Infinity, dn]);
        const q = quantile(deltas, 0.95);
        p95.push([b.t, q === Infinity ? null : q * 1000]);
      } else {
        avg.push([b.t, null]);
        p95.push([b.t, null]);
      }
    }
    return { rate, avg, p95 };
  }

  function niceMax(value) {
    if (value <= 0) return 1;
    const step = 10 ** Math.floor(Math.log10(value));
    for (const m of [1, 2, 5, 10]) if (value <= m * step) return m * step;
    return 10 * step;
  }

  // The width the value labels take in the chart's own units, measured in place so no label is ever cut off.
  function labelWidth(chart, texts) {
    const probe = svg("text", { class: "axis", x: 0, y: -10 });
    chart.append(probe);
    let widest = 0;
    for (const text of texts) {
      probe.textContent = text;
      const measured = probe.getComputedTextLength();
      widest = Math.max(widest, measured > 0 ? measured : text.length * 5.5);
    }
    probe.remove();
    return widest;
  }

  function drawChart(name, lines, label) {
    const chart = el(document, `svg[data-chart="${name}"]`);
    const W = 320;
    const H = 100;
    const top = 6;
    const bottom = 14;
    const now = Date.now();
    // Until five minutes have been seen, stretch what there is (at least a minute) across the chart.
    const oldest = samples.length ? samples[0].t : now;
    const span = Math.min(HISTORY_MS, Math.max(60000, now - oldest));
    const values = lines.flatMap((l) => l.points.map((p) => p[1]).filter((v) => v !== null));
    const max = niceMax(Math.max(0, ...values));
    const maxText = label(max);
    const left = Math.ceil(Math.max(24, labelWidth(chart, [maxText, "0"]) + 6));
    const x = (t) => left + ((W - left - 2) * (t - (now - span))) / span;
    const y = (v) => top + (H - top - bottom) * (1 - v / max);
    const nodes = [
      svg("line", { class: "grid", x1: left, x2: W, y1: y(0), y2: y(0) }),
      svg("line", { class: "grid", x1: left, x2: W, y1: y(max), y2: y(max) }),
      svg("text", { class: "axis", x: left - 3, y: y(max) + 3, "text-anchor": "end", "data-axis": "max" }),
      svg("text", { class: "axis", x: left - 3, y: y(0) + 3, "text-anchor": "end", "data-axis": "zero" }),
      svg("text", { class: "axis", x: left, y: H - 2 }),
      svg("text", { class: "axis", x: W, y: H - 2, "text-anchor": "end" }),
    ];
    nodes[2].textContent = maxText;
    nodes[3].textContent = "0";
    nodes[4].textContent = `−${duration(span)}`;
    nodes[5].textContent = "now";
    if (!values.length) {
      const empty = svg("text", { class: "empty", x: (W + left) / 2, y: H / 2, "text-anchor": "middle" });
      empty.textContent = "collecting…";
      nodes.push(empty);
    }
    for (const line of lines) {
      let run = [];
      const flush = () => {
        if (run.length > 1) nodes.push(svg("polyline", { class: `line ${line.cls}`, points: run.join(" ") }));
        run = [];
      };
      for (const [t, v] of line.points) {
        if (v === null) flush();
        else run.push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`);
      }
      flush();
    }
    chart.replaceChildren(...nodes);
  }

  function renderCharts() {
    const s = series();
    drawChart("rate", [{ cls: "rate", points: s.rate }], perSecond);
    drawChart("latency", [{ cls: "avg", points: s.avg }, { cls: "p95", points: s.p95 }], millis);
    const lastRate = s.rate.length ? s.rate[s.rate.length - 1][1] : null;
    setText(el(document, '[data-chart-now="rate"]'), lastRate === null ? "" : perSecond(lastRate));
    const lastAvg = s.avg.length ? s.avg[s.avg.length - 1][1] : null;
    const lastP95 = s.p95.length ? s.p95[s.p95.length - 1][1] : null;
    setText(el(document, '[data-chart-now="latency"]'),
      lastAvg === null ? "" : `${ms(lastAvg)} / ${ms(lastP95)}`);
  }

  function connection(state, text) {
    const node = el(document, "#connection");
    node.dataset.state = state;
    setText(node, text);
  }

  function render(state) {
    const t = Date.now();
    if (state.requests) {
      samples.push({ t, req: state.requests, cache: state.cache && state.cache.counts });
      while (samples.length && samples[0].t < t - HISTORY_MS) samples.shift();
    }
    for (const name of Object.keys(SOURCES)) renderSource(name, state.sources[name]);
    renderCache(state.cache);
    renderCharts();
    setText(el(document, "#updated"), `last update ${new Date(t).toLocaleTimeString()}`);
  }

  function get(path) {
    return fetch(path, {
      headers: { Authorization: `Bearer ${key}`, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
  }

  // The server's own samples of the last minutes, so that a reloaded page does not start with empty charts.
  async function loadHistory() {
    try {
      const response = await get("/dashboard/history");
      if (!response.ok) return;
      const body = await response.json();
      const shift = Date.now() - body.now; // the server's clock need not agree with this browser's
      for (const s of body.samples) samples.push({ t: s.t + shift, req: s.requests, cache: s.cache });
    } catch (err) {
      // Nothing to draw yet; the first poll says whether the API can be reached.
    }
  }

  async function poll() {
    timer = null;
    try {
      const response = await get("/dashboard/state");
      if (response.status === 401) {
        connection("down", "The API key was not accepted: open this page as /dashboard?key=<your key>.");
      } else if (!response.ok) {
        connection("down", `The API answered ${response.status}; retrying.`);
      } else {
        render(await response.json());
        connection("up", "Live");
      }
    } catch (err) {
      connection("down", "Cannot reach the API; retrying.");
    }
    schedule();
  }

  function schedule() {
    if (timer === null) timer = window.setTimeout(poll, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && timer !== null) {
      window.clearTimeout(timer);
      timer = null;
      poll();
    }
  });

  // One tile per source, made from the page's template, in front of the cache's.
  const template = document.getElementById("source-tile");
  for (const [name, title] of Object.entries(SOURCES)) {
    const tile = template.content.firstElementChild.cloneNode(true);
    tile.dataset.tile = name;
    setText(el(tile, "h2"), title);
    template.before(tile);
  }
  for (const tile of document.querySelectorAll("[data-tile]")) setState(tile, "unknown", "");
  loadHistory().then(poll);
})();
