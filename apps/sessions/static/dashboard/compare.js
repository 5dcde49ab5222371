// The comparison page's charts: each session's requests/s and p95 from the chart API, laid
// over one another on "seconds since the load started", and their latency distributions
// (percentile curves from the stored histograms) on a log-like percentile axis.
"use strict";

(() => {
  const { api, format, element } = Dashboard;
  const page = document.getElementById("compare-page");
  const sessions = JSON.parse(document.getElementById("compare-sessions").textContent);
  const COLORS = ["#0d6efd", "#dc3545", "#198754", "#fd7e14", "#6f42c1", "#20c997", "#d63384", "#6c757d", "#0dcaf0", "#ffc107"];
  const textColor = () => getComputedStyle(document.body).color;
  const axis = (label, extra) => ({ label, stroke: textColor, grid: { stroke: "rgba(128,128,128,.2)" }, ...extra });

  // Percentiles spread as -log10(1 - q): 90 % at 1, 99 % at 2, 99.9 % at 3 ... where the
  // tail, which is what differs between runs, gets the room. The maximum sits at MAX_X.
  const MAX_X = 4.5;
  const tailX = (q) => (q >= 1 ? MAX_X : Math.min(-Math.log10(1 - q), MAX_X));
  const TICKS = [[0, "0"], [1, "90"], [2, "99"], [3, "99.9"], [4, "99.99"], [MAX_X, "max"]];

  // uPlot wants one x array for every series: the union of the x values, each series null
  // where it has no point.
  function aligned(seriesPoints) {
    const xs = [...new Set(seriesPoints.flatMap((points) => points.map(([x]) => x)))].sort((a, b) => a - b);
    const columns = seriesPoints.map((points) => {
      const byX = new Map(points);
      return xs.map((x) => (byX.has(x) ? byX.get(x) : null));
    });
    return [xs, ...columns];
  }

  function draw(name, unit, xAxis, seriesPoints, options = {}) {
    const holder = page.querySelector(`[data-chart="${name}"]`);
    const data = aligned(seriesPoints);
    const points = data.slice(1).reduce((sum, column) => sum + column.filter((v) => v !== null).length, 0);
    holder.dataset.series = String(seriesPoints.filter((p) => p.length).length);
    holder.dataset.points = String(points);
    if (!points) {
      holder.replaceChildren(element("div", { class: "chart-empty border rounded text-body-secondary" }, "No data."));
      return;
    }
    holder.replaceChildren();
    const valueText = (u, v) => (v === null || v === undefined ? "—" : unit === "ms" ? format.ms(v) : format.rate(v));
    new uPlot(
      {
        width: holder.clientWidth || 500,
        height: 240,
        cursor: { sync: { key: "compare" } },
        scales: { x: { time: false } },
        axes: [xAxis, axis(unit)],
        series: [
          { label: options.xLabel || "s", value: options.xValue || ((u, v) => (v == null ? "—" : `${v} s`)) },
          ...sessions.map((s, i) => ({ label: s.name, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true, value: valueText })),
        ],
      },
      data,
      holder
    );
  }

  async function timeCharts() {
    const answers = await Promise.all(sessions.map((s) => api("GET", `/api/sessions/${s.id}/chart/?points=500`)));
    const series = (key) => answers.map((answer) => {
      if (!answer.ok) return [];
      const chart = answer.data;
      return chart.t.map((t, i) => [t - chart.from, chart[key][i]]).filter(([, v]) => v !== null);
    });
    const seconds = axis("seconds since start");
    draw("rps", "requests/s", seconds, series("rps"));
    draw("p95_ms", "ms", seconds, series("p95_ms"));
  }

  let distributions = [];
  const scopeSelect = document.getElementById("distribution-scope");

  function drawDistribution() {
    const scope = scopeSelect.value || null;
    const series = distributions.map((endpoints) => {
      const entry = endpoints.find((e) => e.endpoint === scope);
      return entry ? entry.curve.map(([q, ms]) => [tailX(q), ms]) : [];
    });
    const percentileAxis = axis("percentile", {
      splits: () => TICKS.map(([x]) => x),
      values: (u, splits) => splits.map((x) => (TICKS.find(([t]) => t === x) || [, ""])[1]),
    });
    const percentText = (u, x) => {
      if (x === null || x === undefined) return "—";
      return x >= MAX_X ? "max" : `${(100 * (1 - Math.pow(10, -x))).toFixed(2)} %`;
    };
    draw("distribution", "ms", percentileAxis, series, { xLabel: "percentile", xValue: percentText });
  }

  async function distributionChart() {
    const answers = await Promise.all(sessions.map((s) => api("GET", `/api/sessions/${s.id}/distribution/`)));
    distributions = answers.map((answer) => (answer.ok ? answer.data.endpoints : []));
    const names = [...new Set(distributions.flatMap((endpoints) => endpoints.map((e) => e.endpoint)).filter((n) => n !== null))].sort();
    scopeSelect.replaceChildren(element("option", { value: "" }, "All endpoints"), ...names.map((n) => element("option", { value: n }, n)));
    drawDistribution();
  }

  scopeSelect.addEventListener("change", drawDistribution);
  timeCharts();
  distributionChart();
})();
