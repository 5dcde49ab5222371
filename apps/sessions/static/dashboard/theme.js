// Light or dark as the system prefers, and again when it changes (Bootstrap's data-bs-theme).
(function () {
  const query = window.matchMedia("(prefers-color-scheme: dark)");
  const apply = () =>
    document.documentElement.setAttribute("data-bs-theme", query.matches ? "dark" : "light");
  apply();
  query.addEventListener("change", apply);
})();
