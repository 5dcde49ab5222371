// The New session form: the request mix in percent as weights are typed (a flow counts each of
// its steps' requests), the fields of the chosen pacing model only, and the target's
// endpoints reloaded when another target is picked.
"use strict";

(() => {
  const form = document.getElementById("session-form");
  const inputs = [...form.querySelectorAll("[data-weight]")];

  function preview() {
    const requests = inputs.map(
      (input) => Math.max(Number(input.value) || 0, 0) * Number(input.dataset.requests || 1));
    const total = requests.reduce((sum, r) => sum + r, 0);
    inputs.forEach((input, i) => {
      const cell = input.closest("tr").querySelector("[data-share]");
      cell.textContent = total ? Dashboard.format.percent(requests[i] / total) : "—";
    });
  }

  function showModel() {
    const model = form.querySelector('input[name="model"]:checked').value;
    form.querySelectorAll("[data-model]").forEach((row) => (row.hidden = row.dataset.model !== model));
  }

  inputs.forEach((input) => input.addEventListener("input", preview));
  form.querySelectorAll('input[name="model"]').forEach((radio) => radio.addEventListener("change", showModel));
  const target = document.getElementById("id_target");
  target.addEventListener("change", () => {
    window.location = `${target.dataset.reloadUrl}?target=${encodeURIComponent(target.value)}`;
  });
  preview();
  showModel();
})();
