// The Sessions page: the rows ticked go to the comparison page as ?ids=1,2, oldest first: the
// first is the reference the others' deltas are against, and a later run is read against an
// earlier one. Filtering is a plain GET form: the server does it, as the API does.
"use strict";

(() => {
  const button = document.getElementById("compare-selected");
  const boxes = () => [...document.querySelectorAll("#session-history [data-compare]")];

  function chosen() {
    return boxes().filter((box) => box.checked).map((box) => Number(box.value)).sort((a, b) => a - b);
  }

  function update() {
    const ids = chosen();
    button.disabled = ids.length < 2;
    button.textContent = ids.length ? `Compare selected (${ids.length})` : "Compare selected";
  }

  document.getElementById("session-history").addEventListener("change", update);
  button.addEventListener("click", () => {
    const ids = chosen();
    if (ids.length >= 2) {
      window.location.assign(`${button.dataset.compareUrl}?ids=${ids.join(",")}`);
    }
  });
  update();
})();
