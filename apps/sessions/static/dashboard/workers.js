// The workers page polls GET /api/workers/ every few seconds.
"use strict";

(() => {
  const { api, format, element, showResult } = Dashboard;
  const body = document.querySelector("#workers tbody");

  async function refresh() {
    const answer = await api("GET", "/api/workers/");
    if (!answer.ok) { showResult(Dashboard.describeError(answer.status, answer.data), "error"); return; }
    Dashboard.fill(document, Dashboard.workerCounts(answer.data.summary));
    const rows = answer.data.workers.map((w) => {
      const shards = w.shards.map((s) => element("a", { href: `/sessions/${s.session}/`, class: "me-2" }, `#${s.session}/${s.shard}`));
      const newest = Math.max(...w.shards.map((s) => s.last_heartbeat), 0);
      return element("tr", {}, element("td", {}, w.hostname), element("td", {}, w.role),
        element("td", {}, ...(shards.length ? shards : [w.role === "load" ? "idle" : "—"])),
        element("td", { class: "num" }, format.count(w.users)), element("td", { class: "num" }, format.rate(w.rate)),
        element("td", {}, newest ? format.ago(newest) : "—"));
    });
    if (!rows.length) rows.push(element("tr", {}, element("td", { colspan: 6, class: "text-body-secondary" }, "No live worker.")));
    body.replaceChildren(...rows);
  }

  refresh();
  setInterval(refresh, 3000);
})();
