// The session page: live figures over the event stream, charts (uPlot) filled from the chart
// API and extended with each tick's newest point, and the controls (through the API, which
// refuses what the user's role may not do).
"use strict";

(() => {
  const { api, act, format, fill, element } = Dashboard;
  const page = document.getElementById("session-page");
  const sessionId = page.dataset.session;
  const base = `/api/sessions/${sessionId}`;
  const durationS = page.dataset.durationS ? Number(page.dataset.durationS) : null;
  const ENDED = ["completed", "stopped", "failed"];
  const FAILURE_CLASSES = ["http_5xx", "http_4xx", "network", "timeout", "application", "cancelled"];
  const COLORS = ["#0d6efd", "#dc3545", "#fd7e14", "#6f42c1", "#20c997", "#6c757d"];

  // --- charts ---------------------------------------------------------------------------
  // One column store (uPlot's shape: t plus one array per figure), drawn by four charts
  // that share a cursor.
  // The whole run lives in `run` and grows with the stream; a zoom draws `zoomed` (the
  // selected range fetched at finer grain) until it is reset.
  const FIGURES = ["rps", "failures_per_s", "p50_ms", "p95_ms", "p99_ms", "users"];
  const emptyStore = () => ({
    columns: Object.fromEntries(["t", ...FIGURES].map((key) => [key, []])),
    byClass: Object.fromEntries(FAILURE_CLASSES.map((name) => [name, []])),
  });
  const run = emptyStore();
  let zoomed = null;
  const textColor = () => getComputedStyle(document.body).color;
  const axis = (label) => ({ label, stroke: textColor, grid: { stroke: "rgba(128,128,128,.2)" } });
  const charts = {};
  // The time axis's steps, in seconds: the points are whole seconds, so no finer step.
  const TIME_INCREMENTS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
    21600, 43200, 86400, 172800, 604800];

  const CHARTS = {
    rps: {
      unit: "requests/s",
      series: [["requests/s", "rps", COLORS[0]], ["failures/s", "failures_per_s", COLORS[1]]],
    },
    latency: {
      unit: "ms",
      series: [["p50", "p50_ms", COLORS[4]], ["p95", "p95_ms", COLORS[2]], ["p99", "p99_ms", COLORS[1]]],
    },
    users: { unit: "users", series: [["users", "users", COLORS[3]]] },
    errors: {
      unit: "failures/s",
      series: FAILURE_CLASSES.map((name, i) => [name, `class:${name}`, COLORS[i % COLORS.length]]),
    },
  };

  function seriesData(key) {
    const shown = zoomed || run;
    return key.startsWith("class:") ? shown.byClass[key.slice(6)] : shown.columns[key];
  }

  function hasData(spec) {
    return spec.series.some(([, key]) => seriesData(key).some((v) => v !== null && v !== undefined));
  }

  function draw() {
    for (const [name, spec] of Object.entries(CHARTS)) {
      const holder = page.querySelector(`[data-chart="${name}"]`);
      const data = [seriesData("t"), ...spec.series.map(([, key]) => seriesData(key))];
      if (!hasData(spec)) {
        if (charts[name]) { charts[name].destroy(); delete charts[name]; }
        // Points but no failure among them: say so, rather than that nothing has arrived.
        const said = name === "errors" && seriesData("t").length ? "No failures." : "No data yet.";
        holder.replaceChildren(element("div", { class: "chart-empty border rounded text-body-secondary" }, said));
        continue;
      }
      if (charts[name]) { charts[name].setData(data); continue; }
      holder.replaceChildren();
      charts[name] = new uPlot(
        {
          width: holder.clientWidth || 500,
          height: 220,
          // A drag selects a range to fetch (zoomTo), rather than uPlot's own rescale.
          cursor: { sync: { key: `session-${sessionId}` }, drag: { x: true, y: false, setScale: false } },
          hooks: { setSelect: [selectRange] },
          scales: { x: { time: true } },
          // Whole seconds at least: a run's first seconds would otherwise read ":05.000 :05.500".
          axes: [{ ...axis("local time"), incrs: TIME_INCREMENTS }, axis(spec.unit)],
          series: [{}, ...spec.series.map(([label, , stroke]) => ({ label, stroke, width: 1.5, spanGaps: false,
            value: (u, v) => (v === null || v === undefined ? "—" : spec.unit === "ms" ? format.ms(v) : format.rate(v)) }))],
        },
        data,
        holder
      );
      holder.addEventListener("dblclick", resetZoom);
    }
  }

  // --- zoom -----------------------------------------------------------------------------
  const resetButton = page.querySelector('[data-action="reset-zoom"]');

  function selectRange(chart) {
    if (chart.select.width < 2) return;
    const fromT = chart.posToVal(chart.select.left, "x");
    const toT = chart.posToVal(chart.select.left + chart.select.width, "x");
    chart.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    zoomTo(Math.floor(fromT), Math.ceil(toT));
  }

  // The charts share their cursor, so one drag selects on each of them: fetch once.
  let zoomRange = null;

  async function zoomTo(fromT, toT) {
    if (toT <= fromT || zoomRange === `${fromT}-${toT}`) return;
    zoomRange = `${fromT}-${toT}`;
    const answer = await api("GET", `${base}/chart/?from=${fromT}&to=${toT}`);
    if (!answer.ok) return;
    zoomed = emptyStore();
    appendColumns(zoomed, answer.data);
    resetButton.hidden = false;
    draw();
  }

  function resetZoom() {
    if (!zoomed) return;
    zoomed = null;
    zoomRange = null;
    resetButton.hidden = true;
    draw();
  }

  resetButton.addEventListener("click", resetZoom);

  window.addEventListener("resize", () => {
    for (const [name, chart] of Object.entries(charts)) {
      const holder = page.querySelector(`[data-chart="${name}"]`);
      chart.setSize({ width: holder.clientWidth, height: 220 });
    }
  });

  // Add points after the last one held (a catch-up may repeat the newest second).
  function appendColumns(store, chart) {
    const { columns, byClass } = store;
    const lastT = columns.t.length ? columns.t[columns.t.length - 1] : -Infinity;
    chart.t.forEach((t, i) => {
      if (t <= lastT) return;
      columns.t.push(t);
      for (const key of FIGURES) columns[key].push(chart[key] ? chart[key][i] ?? null : null);
      for (const name of FAILURE_CLASSES) {
        const values = (chart.failures_by_class || {})[name];
        byClass[name].push(values ? values[i] ?? null : null);
      }
    });
  }

  function appendPoint(point) {
    const one = { t: [point.t], failures_by_class: {} };
    for (const key of FIGURES) one[key] = [point[key]];
    for (const [name, count] of Object.entries(point.failures_by_class || {})) one.failures_by_class[name] = [count];
    appendColumns(run, one);
  }

  // The chart API (GET .../chart/): the whole run, or from a second on.
  async function loadChart(fromT) {
    const query = fromT ? `?from=${fromT}` : "";
    const answer = await api("GET", `${base}/chart/${query}`);
    return answer.ok ? answer.data : null;
  }

  async function catchUp() {
    const lastT = run.columns.t.length ? run.columns.t[run.columns.t.length - 1] : null;
    const chart = await loadChart(lastT);
    if (chart) { appendColumns(run, chart); draw(); }
  }

  // --- figures --------------------------------------------------------------------------
  // Live figures cover the last seconds; once a session has ended its page shows the whole
  // run's (all endpoints together, as every other surface), whichever snapshot it got.
  function render(snapshot) {
    const ended = ENDED.includes(snapshot.status);
    const live = ended ? {} : snapshot.live || {};
    const endpoints = snapshot.endpoints || [];
    const total = snapshot.total_requests;
    document.querySelector('[data-testid="session-status"]').textContent = snapshot.status;
    document.querySelector('[data-testid="live-total"]').textContent = format.count(total);
    document.querySelector('[data-testid="live-rps"]').textContent = format.rate(live.rps ?? snapshot.run.rps);
    // The whole run's figures (all endpoints' histograms merged), as the list, the report
    // and the API show them; live ones while the session runs.
    const run = snapshot.run || {};
    const errorRate = live.error_rate ?? run.error_rate;
    const remaining = snapshot.remaining_s ?? (durationS && snapshot.duration_s ? durationS - snapshot.duration_s : null);
    // While running, a live percentile the window cannot tell yet stays "—" (the note says
    // why), rather than borrowing the whole run's figure under a "last N s" label.
    const figure = (key) => (ended || !("latency_answers" in live) ? live[key] ?? run[key] : live[key]);
    page.querySelectorAll("[data-live-label]").forEach((label) => {
      label.textContent = ended ? label.dataset.endedLabel : label.dataset.liveLabel;
    });
    // The live percentiles say the window they cover, which stretches while answers are few.
    if (!ended && live.latency_window_s != null) {
      page.querySelector('[data-testid="percentiles-label"]').textContent =
        `p50 / p95 / p99 (last ${format.seconds(live.latency_window_s)}, ${format.count(live.latency_answers)} answers)`;
    }
    fill(page, {
      elapsed: format.duration(snapshot.duration_s),
      remaining: ended ? "ended" : durationS || snapshot.remaining_s != null ? format.duration(remaining) : "until stopped",
      failures: format.count(snapshot.total_failures),
      counted_apart: `${format.count(run.cut_by_stop ?? 0)} cut by the stop · ${format.count(run.unreached ?? 0)} unreached`,
      error_rate: format.percent(errorRate),
      percentiles: ["p50_ms", "p95_ms", "p99_ms"].map((k) => format.ms(figure(k))).join(" / "),
      percentile_note: ended ? "" : tooFewNote(live),
      status_detail: snapshot.status_detail ?? "",
    });
    if (ended) setUsers(0);
    else if (live.users !== undefined) setUsers(live.users);
    renderEndpoints(endpoints, total);
    renderFlows(snapshot.flows || []);
    renderThresholds(snapshot.threshold_results || []);
    renderEvents(snapshot.recent_events || []);
    if (snapshot.errors) renderErrors(snapshot.errors);
    if (snapshot.shards) renderShards(snapshot.shards);
    toggleControls(snapshot.status);
  }

  // A percentile the window's answers cannot tell from the slowest one is left out: say why.
  const ANSWERS_NEEDED = { p50_ms: ["p50", 2], p95_ms: ["p95", 20], p99_ms: ["p99", 100] };
  function tooFewNote(live) {
    const answers = live.latency_answers;
    if (answers == null) return "";
    const missing = Object.entries(ANSWERS_NEEDED).filter(([key]) => live[key] == null).map(([, pair]) => pair);
    if (!missing.length) return "";
    const [name, needed] = missing[missing.length - 1];
    return `${missing.map(([n]) => n).join(", ")}: too few answers yet (${name} needs ${needed}; ${format.count(answers)} in the window)`;
  }

  function setUsers(users) {
    document.querySelector('[data-testid="live-users"]').textContent = format.count(users);
  }

  // Which response checks failed (each is also an application failure): one line per
  // endpoint under its failures, empty when none did.
  function checkFailures(e) {
    const checks = Object.entries(e.check_failures || {});
    if (!checks.length) return "";
    const text = checks.map(([name, n]) => `${name} ${format.count(n)}`).join(", ");
    return element("div", { class: "text-body-secondary", "data-testid": "check-failures" }, `checks failed: ${text}`);
  }

  // Requests counted apart (see the Requests tile): a line under the failures, when any.
  function countedApart(e) {
    const parts = [];
    if (e.cut_by_stop) parts.push(`${format.count(e.cut_by_stop)} cut by the stop`);
    if (e.unreached) parts.push(`${format.count(e.unreached)} unreached`);
    if (!parts.length) return "";
    return element("div", { class: "text-body-secondary", "data-testid": "counted-apart" }, parts.join(", "));
  }

  function renderEndpoints(endpoints, total) {
    const rows = endpoints.map((e) => {
      const classes = Object.entries(e.failures_by_class || {}).map(([name, n]) => `${name} ${format.count(n)}`).join(", ");
      return element("tr", {},
        element("td", {}, element("span", { class: "text-body-secondary small me-1" }, e.method), e.name),
        element("td", { class: "num" }, format.count(e.requests)),
        element("td", { class: "num" }, format.percent(total ? e.requests / total : null)),
        element("td", { class: "small" }, e.failures ? `${format.count(e.failures)} (${classes})` : "0", checkFailures(e), countedApart(e)),
        ...["p50_ms", "p95_ms", "p99_ms", "max_ms"].map((k) => element("td", { class: "num" }, format.ms(e[k]))));
    });
    if (!rows.length) rows.push(element("tr", {}, element("td", { colspan: 8, class: "text-body-secondary" }, "No request yet.")));
    page.querySelector('[data-testid="endpoint-table"] tbody').replaceChildren(...rows);
  }

  // Multi-step flows: the section stays hidden for a session without any.
  function renderFlows(flows) {
    const section = page.querySelector('[data-testid="flow-section"]');
    if (!flows.length) return;
    section.hidden = false;
    const rows = flows.map((f) => element("tr", {},
      element("td", {}, f.name),
      element("td", { class: "num" }, format.count(f.iterations)),
      element("td", { class: "num" }, format.count(f.failed_iterations)),
      element("td", { class: "num" }, format.percent(f.failure_rate)),
      ...["mean_ms", "p50_ms", "p95_ms", "p99_ms"].map((k) => element("td", { class: "num" }, format.ms(f[k])))));
    section.querySelector("tbody").replaceChildren(...rows);
  }

  function renderThresholds(results) {
    const table = page.querySelector('[data-testid="threshold-table"] tbody');
    if (!table || !results.length) return;  // none, or none judged yet: the page's rows stay
    const badges = { true: ["success", "pass"], false: ["danger", "fail"], null: ["secondary", "not judged yet"] };
    const rows = results.map((r) => {
      const [color, word] = badges[r.passed];
      const observed = r.observed == null ? "—"
        : r.metric.endsWith("_ms") ? format.ms(r.observed)
        : r.metric === "error_rate" ? format.percent(r.observed)
        : r.metric === "rps" ? `${format.rate(r.observed)} /s` : format.count(r.observed);
      return element("tr", {},
        element("td", {}, element("code", {}, r.expression)),
        element("td", {}, element("span", { class: `badge text-bg-${color}` }, word), r.aborted ? " stopped the session" : ""),
        element("td", { class: "num" }, observed),
        element("td", { class: "small" }, [r.note, r.final ? "final" : ""].filter(Boolean).join(" · ")));
    });
    table.replaceChildren(...rows);
  }

  // Each event: when, what (in words), the message, and who through which surface
  // ("olga via page"); the engine's own carry the worker that saw them.
  function renderEvents(events) {
    const items = events.map((e) => element("li", { class: "mb-1", "data-kind": e.kind },
      element("span", { class: "text-body-secondary me-1" }, format.time(e.at)),
      element("strong", { class: "me-1" }, e.label || e.kind), e.message,
      element("span", { class: "text-body-secondary ms-1", "data-testid": "event-who" },
        `— ${e.actor || "system"} via ${e.via || "system"}${e.hostname ? ` on ${e.hostname}` : ""}`)));
    if (!items.length) items.push(element("li", { class: "text-body-secondary" }, "No events."));
    document.getElementById("event-list").replaceChildren(...items);
  }

  function renderErrors(samples) {
    const rows = samples.map((s) => element("tr", {},
      element("td", {}, format.time(s.at)), element("td", {}, s.endpoint), element("td", {}, s.failure_class),
      element("td", {}, s.status ?? "—"), element("td", { class: "error-message" }, String(s.message || "").slice(0, 200))));
    if (rows.length) document.querySelector("#error-log tbody").replaceChildren(...rows);
  }

  function renderShards(shards) {
    const rows = shards.map((s) => element("tr", {},
      element("td", {}, `${s.shard} (gen ${s.generation})`), element("td", {}, s.hostname),
      element("td", { class: "num" }, format.count(s.users)), element("td", { class: "num" }, format.rate(s.rate)),
      element("td", {}, format.ago(s.last_heartbeat))));
    if (!rows.length) rows.push(element("tr", {}, element("td", { colspan: 5, class: "text-body-secondary" }, "No shard running.")));
    document.querySelector("#shard-table tbody").replaceChildren(...rows);
    if (shards.length) setUsers(shards.reduce((sum, s) => sum + s.users, 0));
  }

  function toggleControls(status) {
    const ended = ENDED.includes(status);
    page.querySelectorAll('[data-action="start"]').forEach((b) => (b.hidden = status !== "pending"));
    // Started from this page: its Stop appears as the status leaves "pending".
    page.querySelectorAll('[data-action="stop"]').forEach((b) => (b.hidden = status === "pending" || ended));
    page.querySelectorAll('[data-action="stop"], [data-action="users"], [data-action="weights"], [data-emergency-stop]')
      .forEach((b) => (b.disabled = ended));
  }

  // --- the stream -----------------------------------------------------------------------
  const streamState = document.querySelector('[data-testid="stream-state"]');
  let stream = null;
  let lostStream = false;

  function connect() {
    stream = new EventSource(`${base}/events/`);
    stream.onopen = () => {
      streamState.textContent = "connected";
      if (lostStream) { lostStream = false; catchUp(); }
    };
    stream.onerror = () => {
      // EventSource reconnects by itself (the server's retry: interval) unless the server
      // refused the stream outright, which closes it.
      lostStream = true;
      streamState.textContent = stream.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting";
    };
    stream.addEventListener("stats", (event) => {
      const snapshot = JSON.parse(event.data);
      render(snapshot);
      // "Starting." holds until the load runs; the status says the rest.
      const said = document.getElementById("action-result");
      if (said && snapshot.status === "running" && said.textContent.trim() === "Starting.") said.className = "alert d-none";
      if (snapshot.point) { appendPoint(snapshot.point); draw(); }
      else catchUp();
    });
    stream.addEventListener("end", (event) => {
      stream.close();
      streamState.textContent = "ended";
      // What a button said ("Starting.", "Weights applied.") no longer holds: the status
      // says how it ended. A refusal stays until the next action.
      const said = document.getElementById("action-result");
      if (said && said.classList.contains("alert-success")) said.className = "alert d-none";
      render(JSON.parse(event.data));
      renderShards([]);
      catchUp();
    });
  }

  // --- controls -------------------------------------------------------------------------
  const onClick = (action, handler) =>
    page.querySelectorAll(`[data-action="${action}"]`).forEach((b) => b.addEventListener("click", handler));

  onClick("start", async () => {
    const answer = await act("POST", `${base}/start/`, undefined, "Starting.");
    if (answer.ok && (!stream || stream.readyState === EventSource.CLOSED)) connect();
  });
  onClick("stop", () => act("POST", `${base}/stop/`, undefined, "Stopping: every shard stops within a second."));
  // The configuration history is drawn by the server: a change made here redraws it, so the
  // page never says "No change" under a change it has just applied.
  async function refreshHistory() {
    const answer = await api("GET", `${base}/history/`);
    if (!answer.ok) return;
    const rows = (answer.data.results || []).slice(0, 50).map((c) => element("tr", { "data-field": c.field },
      element("td", {}, String(c.changed_at).replace("T", " ").slice(0, 19)),
      element("td", {}, c.changed_by ?? "system"), element("td", {}, c.via), element("td", {}, c.field),
      element("td", { class: "history-value" }, c.old_text), element("td", { class: "history-value" }, c.new_text)));
    const body = page.querySelector('[data-testid="history-table"] tbody');
    if (body && rows.length) body.replaceChildren(...rows);
  }

  onClick("users", async () => {
    const users = Number(document.getElementById("users-now").value);
    const answer = await act("PATCH", `${base}/`, { concurrent_users: users }, `Users set to ${format.count(users)}.`);
    if (answer.ok) refreshHistory();
  });
  onClick("weights", async () => {
    const weights = {};
    document.querySelectorAll("#weights-now [data-endpoint]").forEach((input) => (weights[input.dataset.endpoint] = Number(input.value)));
    const answer = await act("PATCH", `${base}/`, { endpoint_weights: weights }, "Weights applied.");
    if (answer.ok) refreshHistory();
  });

  // The baseline buttons change the target, and so what this page shows: reload it.
  onClick("baseline-set", async () => {
    const answer = await act("POST", `${base}/baseline/`, undefined, "Marked as the target's baseline.");
    if (answer.ok) window.location.reload();
  });
  onClick("baseline-clear", async () => {
    const answer = await act("DELETE", `${base}/baseline/`, undefined, "The target has no baseline now.");
    if (answer.ok) window.location.reload();
  });

  // --- start ----------------------------------------------------------------------------
  const initial = JSON.parse(document.getElementById("initial-snapshot").textContent);
  render(initial);
  if (!ENDED.includes(initial.status)) setUsers(page.dataset.configuredUsers);  // until a tick says
  // A pending session has no points yet: fetching now would lay the charts' time axis from
  // its creation, minutes before its load (the stream's first points start them instead).
  if (initial.status !== "pending") catchUp();
  if (page.dataset.terminal !== "true" && initial.status !== "pending") connect();
  else if (initial.status === "pending") streamState.textContent = "not started";
})();
