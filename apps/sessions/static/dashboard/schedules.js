// The schedules page: enable, disable and delete through the API, as the signed-in user (the
// API checks the same permissions as everywhere).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("#schedules tr[data-schedule]").forEach((row) => {
    const url = `/api/schedules/${row.dataset.schedule}/`;
    const toggle = row.querySelector("[data-toggle]");
    if (toggle) {
      toggle.addEventListener("change", async () => {
        const enabled = toggle.checked;
        const answer = await Dashboard.act("PATCH", url, { enabled }, enabled ? "Schedule enabled." : "Schedule disabled.");
        if (!answer.ok) toggle.checked = !enabled;
      });
    }
    const remove = row.querySelector("[data-delete]");
    if (remove) {
      remove.addEventListener("click", async () => {
        if (!window.confirm("Delete this schedule? Its runs stay, as sessions.")) return;
        const answer = await Dashboard.act("DELETE", url, undefined, "Schedule deleted.");
        if (answer.ok) row.remove();
      });
    }
  });
});
