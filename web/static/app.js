// The dashboard: reads the Data API of the server it was loaded from with an
// API key the viewer supplies. All values are written with textContent, never
// as HTML, because page paths, titles and sources come from visitors.
"use strict";

(function () {
  const store = window.sessionStorage;
  const $ = (id) => document.getElementById(id);
  const fmt = new Intl.NumberFormat();
  const percent = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });
  let realtimeTimer = 0;
  let generation = 0; // drops answers to a load that a newer one replaced

  // credentials from the URL fragment (#property=ID&key=KEY) move into
  // sessionStorage and out of the address bar and the browser history.
  function takeFragment() {
    if (!location.hash || location.hash.length < 2) return;
    const params = new URLSearchParams(location.hash.slice(1));
    const property = params.get("property");
    const key = params.get("key");
    if (property && key) {
      store.setItem("avila.property", property);
      store.setItem("avila.key", key);
    }
    history.replaceState(null, "", location.pathname + location.search);
  }

  function credentials() {
    const property = store.getItem("avila.property");
    const key = store.getItem("avila.key");
    return property && key ? { property, key } : null;
  }

  class APIError extends Error {
    constructor(code, status, message) {
      super(message);
      this.code = code;
      this.status = status;
    }
  }

  async function call(creds, method, body) {
    const url = "/v1beta/properties/" + encodeURIComponent(creds.property) + ":" + method;
    let res;
    try {
      res = await fetch(url, {
        method: "POST",
        headers: { "Authorization": "Bearer " + creds.key, "Content-Type": "application/json" },
        body: JSON.stringify(body),
        cache: "no-store",
      });
    } catch (e) {
      throw new APIError(0, "UNAVAILABLE", "the server did not answer (" + e.message + ")");
    }
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      const err = data && data.error ? data.error : {};
      throw new APIError(res.status, err.status || "", err.message || ("HTTP " + res.status));
    }
    return data;
  }

  function metric(row, i) {
    return row && row.metricValues && row.metricValues[i] ? Number(row.metricValues[i].value) : 0;
  }

  // siteToday is today's date (YYYYMMDD) in the property's time zone, as the
  // API reckons "today".
  function siteToday(timeZone) {
    let parts;
    try {
      parts = new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).formatToParts(new Date());
    } catch (e) {
      parts = new Intl.DateTimeFormat("en-CA", { year: "numeric", month: "2-digit", day: "2-digit" }).formatToParts(new Date());
    }
    const get = (t) => parts.find((p) => p.type === t).value;
    return get("year") + get("month") + get("day");
  }

  // days lists the n dates (YYYYMMDD) that end with today.
  function days(today, n) {
    const end = Date.UTC(+today.slice(0, 4), +today.slice(4, 6) - 1, +today.slice(6, 8));
    const out = [];
    for (let i = n - 1; i >= 0; i--) {
      const d = new Date(end - i * 86400000);
      out.push(d.toISOString().slice(0, 10).replaceAll("-", ""));
    }
    return out;
  }

  function duration(seconds) {
    if (!isFinite(seconds) || seconds <= 0) return "0s";
    const m = Math.floor(seconds / 60);
    const s = Math.round(seconds % 60);
    return m > 0 ? m + "m " + s + "s" : s + "s";
  }

  function fillTable(id, rows) {
    const body = $(id).tBodies[0];
    body.replaceChildren();
    if (!rows || rows.length === 0) {
      const tr = body.insertRow();
      const td = tr.insertCell();
      td.colSpan = 3;
      td.textContent = "No data in this period";
      return;
    }
    for (const row of rows) {
      const tr = body.insertRow();
      const name = row.dimensionValues[0].value;
      const first = tr.insertCell();
      first.textContent = name === "" ? "(not set)" : name;
      first.title = first.textContent;
      for (let i = 0; i < row.metricValues.length; i++) {
        tr.insertCell().textContent = fmt.format(metric(row, i));
      }
    }
  }

  function drawSeries(rows, today, n) {
    const dates = days(today, n);
    const views = new Map();
    const users = new Map();
    for (const row of rows || []) {
      views.set(row.dimensionValues[0].value, metric(row, 0));
      users.set(row.dimensionValues[0].value, metric(row, 1));
    }
    const v = dates.map((d) => views.get(d) || 0);
    const u = dates.map((d) => users.get(d) || 0);
    const max = Math.max(1, ...v, ...u);
    const points = (values) => values.map((y, i) => {
      const x = values.length === 1 ? 400 : (i * 800) / (values.length - 1);
      return x.toFixed(1) + "," + (195 - (y / max) * 185).toFixed(1);
    }).join(" ");
    $("series-views").setAttribute("points", points(v));
    $("series-views").dataset.values = v.join(",");
    $("series-users").setAttribute("points", points(u));
    $("series-users").dataset.values = u.join(",");
    const label = (d) => d.slice(0, 4) + "-" + d.slice(4, 6) + "-" + d.slice(6, 8);
    $("series-first").textContent = label(dates[0]);
    $("series-last").textContent = label(dates[dates.length - 1]);
  }

  // showCommerce shows the revenue card and the top products when the
  // period has purchases, in the property's currency.
  function showCommerce(commerce, products) {
    const c = commerce.rows && commerce.rows[0];
    const shop = metric(c, 1) > 0;
    $("card-revenue").hidden = !shop;
    $("top-products").hidden = !shop;
    if (!shop) return;
    let money = fmt;
    try {
      money = new Intl.NumberFormat(undefined, { style: "currency", currency: commerce.metadata.currencyCode });
    } catch (e) {
      // an unknown currency code: plain numbers
    }
    $("total-totalRevenue").textContent = money.format(metric(c, 0));
    $("total-ecommercePurchases").textContent = fmt.format(metric(c, 1)) + " purchases";
    fillTable("top-products", products.rows);
  }

  function top(dimension, metrics, limit) {
    return {
      dimensions: [{ name: dimension }],
      metrics: metrics.map((name) => ({ name })),
      orderBys: [{ metric: { metricName: metrics[0] }, desc: true }],
      limit: String(limit),
    };
  }

  async function load() {
    const creds = credentials();
    if (!creds) return showLogin("");
    const mine = ++generation;
    const n = Number($("range").value) || 30;
    const dateRanges = [{ startDate: (n - 1) + "daysAgo", endDate: "today" }];
    const withRange = (req) => Object.assign({ dateRanges }, req);
    const report = $("report");
    report.dataset.state = "loading";
    $("status").textContent = "Loading…";
    try {
      const [a, b] = await Promise.all([
        call(creds, "batchRunReports", { requests: [
          withRange({ metrics: ["activeUsers", "sessions", "screenPageViews", "eventCount", "bounceRate", "averageSessionDuration"]
            .map((name) => ({ name })) }),
          withRange({ dimensions: [{ name: "date" }], metrics: [{ name: "screenPageViews" }, { name: "activeUsers" }],
            orderBys: [{ dimension: { dimensionName: "date" } }], limit: "1000" }),
          withRange(top("pagePath", ["screenPageViews", "activeUsers"], 10)),
          withRange({ metrics: [{ name: "totalRevenue" }, { name: "ecommercePurchases" }] }),
        ] }),
        call(creds, "batchRunReports", { requests: [
          withRange(top("sessionSource", ["sessions", "activeUsers"], 10)),
          withRange(top("country", ["activeUsers", "screenPageViews"], 10)),
          withRange(top("deviceCategory", ["activeUsers", "screenPageViews"], 10)),
          withRange(top("itemName", ["itemRevenue", "itemsPurchased"], 10)),
        ] }),
      ]);
      if (mine !== generation) return;
      const [totals, series, pages, commerce] = a.reports;
      const [sources, countries, devices, products] = b.reports;
      const t = totals.rows && totals.rows[0];
      $("total-activeUsers").textContent = fmt.format(metric(t, 0));
      $("total-sessions").textContent = fmt.format(metric(t, 1));
      $("total-screenPageViews").textContent = fmt.format(metric(t, 2));
      $("total-eventCount").textContent = fmt.format(metric(t, 3));
      $("total-bounceRate").textContent = percent.format(metric(t, 4));
      $("total-averageSessionDuration").textContent = duration(metric(t, 5));
      const timeZone = totals.metadata && totals.metadata.timeZone;
      drawSeries(series.rows, siteToday(timeZone), n);
      fillTable("top-pages", pages.rows);
      fillTable("top-sources", sources.rows);
      fillTable("top-countries", countries.rows);
      fillTable("top-devices", devices.rows);
      showCommerce(commerce, products);
      $("status").textContent = "Updated " + new Date().toLocaleTimeString() + (timeZone ? " · dates in " + timeZone : "");
      report.dataset.state = "ready";
    } catch (e) {
      if (mine !== generation) return;
      fail(e);
    }
    connectLive();
  }

  // The live card follows the realtime WebSocket, which pushes a summary
  // every second; while the socket is down it polls :runRealtimeReport and
  // tries the socket again.
  let socket = null;

  function closeLive() {
    window.clearTimeout(realtimeTimer);
    if (socket) {
      const ws = socket;
      socket = null;
      ws.close();
    }
  }

  function showLive(users, views, source) {
    $("realtime-users").textContent = fmt.format(users);
    $("realtime-views").textContent = fmt.format(views) + " page views";
    $("card-realtime").dataset.source = source;
    $("card-realtime").hidden = false;
  }

  function connectLive() {
    const creds = credentials();
    if (!creds || socket || document.hidden) return;
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host +
      "/v1/realtime/ws?property=" + encodeURIComponent(creds.property) + "&key=" + encodeURIComponent(creds.key);
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      return pollRealtime();
    }
    socket = ws;
    ws.onmessage = (ev) => {
      if (socket !== ws) return;
      try {
        const s = JSON.parse(ev.data);
        showLive(s.activeUsers || 0, s.screenPageViews || 0, "socket");
      } catch (e) {
        // A message that is not a summary is ignored; the next one counts.
      }
    };
    ws.onclose = () => {
      if (socket !== ws) return;
      socket = null;
      // Refused before it opened (key, property) or dropped later: the
      // report API tells which, polls while the socket is down, and tries
      // the socket again.
      pollRealtime();
    };
  }

  async function pollRealtime() {
    const creds = credentials();
    if (!creds) return;
    window.clearTimeout(realtimeTimer);
    try {
      const res = await call(creds, "runRealtimeReport", { metrics: [{ name: "activeUsers" }, { name: "screenPageViews" }] });
      const row = res.rows && res.rows[0];
      showLive(metric(row, 0), metric(row, 1), "report");
    } catch (e) {
      // A server without realtime support answers 4xx for the method; the
      // card stays hidden rather than showing a number it does not have.
      $("card-realtime").hidden = true;
      if (e.code === 401 || e.code === 403) return fail(e);
    }
    if (!document.hidden && !socket) realtimeTimer = window.setTimeout(connectLive, 15000);
  }

  function fail(e) {
    if (e.code === 401 || e.code === 403) {
      store.removeItem("avila.key");
      return showLogin("The API refused the key: " + e.message);
    }
    $("report").dataset.state = "error";
    $("status").textContent = "Could not load the reports: " + e.message;
  }

  function showLogin(message) {
    closeLive();
    $("report").hidden = true;
    $("controls").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message;
    const property = store.getItem("avila.property");
    if (property) $("login-property").value = property;
  }

  function showReport() {
    const creds = credentials();
    $("login").hidden = true;
    $("controls").hidden = false;
    $("property-label").textContent = creds.property;
    $("report").hidden = false;
    load();
  }

  function start() {
    takeFragment();
    $("login").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const property = $("login-property").value.trim();
      const key = $("login-key").value.trim();
      if (!/^[0-9]+$/.test(property)) {
        $("login-error").textContent = "The property ID is a number, e.g. 1.";
        return;
      }
      store.setItem("avila.property", property);
      store.setItem("avila.key", key);
      $("login-key").value = "";
      showReport();
    });
    $("range").addEventListener("change", load);
    $("refresh").addEventListener("click", load);
    $("logout").addEventListener("click", () => {
      store.removeItem("avila.key");
      showLogin("");
    });
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) closeLive();
      else if (credentials()) connectLive();
    });
    if (credentials()) showReport(); else showLogin("");
  }

  start();
})();
