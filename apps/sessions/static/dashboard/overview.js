// The overview polls the API every few seconds (one list and one stats call per running
// session, plus the workers): a handful of requests for a page with few live rows, and no
// stream held open per session.
"use strict";

(() => {
  const { api, format, fill, element } = Dashboard;
  const REFRESH_MS = 5000;
  const table = document.querySelector("#active-sessions tbody");

  async function activeRow(session, usersBySession) {
    const answer = await api("GET", `/api/sessions/${session.id}/stats/`);
    const stats = answer.ok ? answer.data : {};
    // The run so far, all endpoints together (the columns say so): the figures the session's
    // list row and API give, never one endpoint's.
    const run = stats.run || {};
    const durationS = Number(session.duration_minutes) * 60;
    const total = stats.total_requests ?? session.total_requests;
    return element("tr", { "data-session": session.id },
      element("td", {}, element("a", { href: `/sessions/${session.id}/` }, `#${session.id} ${session.session_name}`)),
      element("td", {}, session.status),
      element("td", { class: "num" }, format.duration(stats.duration_s)),
      element("td", { class: "num" }, durationS ? format.duration(stats.remaining_s ?? durationS - (stats.duration_s || 0)) : "until stopped"),
      element("td", { class: "num" }, format.count(usersBySession[session.id] ?? session.concurrent_users)),
      element("td", { class: "num" }, format.rate(run.rps)),
      element("td", { class: "num" }, format.percent(run.error_rate ?? (total ? (stats.total_failures ?? 0) / total : null))),
      element("td", { class: "num" }, format.ms(run.p95_ms)));
  }

  async function refresh() {
    const [sessions, workers] = await Promise.all([
      api("GET", "/api/sessions/?ordering=-created_at&page_size=100"),
      api("GET", "/api/workers/"),
    ]);
    const usersBySession = {};
    if (workers.ok) {
      const list = workers.data.workers;
      for (const shard of list.flatMap((w) => w.shards)) usersBySession[shard.session] = (usersBySession[shard.session] || 0) + shard.users;
      fill(document, { ...Dashboard.workerCounts(workers.data.summary), users_running: format.count(list.reduce((s, w) => s + w.users, 0)) });
    }
    if (!sessions.ok) return;
    const active = sessions.data.results.filter((s) => ["starting", "running", "stopping"].includes(s.status));
    const rows = await Promise.all(active.map((s) => activeRow(s, usersBySession)));
    if (!rows.length) rows.push(element("tr", {}, element("td", { colspan: 8, class: "text-body-secondary" }, "Nothing is running.")));
    table.replaceChildren(...rows);
  }

  refresh();
  setInterval(refresh, REFRESH_MS);
})();

// "Compare selected": the list is newest first, the comparison's first id is its reference;
// send the ticked sessions oldest first, so that a later run is read against an earlier one.
(() => {
  const form = document.getElementById("compare-form");
  if (!form) return;
  form.addEventListener("submit", (event) => {
    const ids = [...form.querySelectorAll("input[name=ids]:checked")]
      .map((box) => Number(box.value)).sort((a, b) => a - b);
    event.preventDefault();
    window.location.assign(`${form.action}?ids=${ids.join(",")}`);
  });
})();
