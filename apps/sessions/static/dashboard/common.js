// What every dashboard page shares: calling the API as the signed-in user, saying what it
// answered, and writing numbers and times for people. No build step: a plain script that
// defines one global, `Dashboard`.
"use strict";

const Dashboard = (() => {
  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  // The API's refusal in words: {"detail": ...} or {"field": ["message", ...]}.
  function describeError(status, data) {
    if (data && typeof data === "object") {
      if (data.detail) return String(data.detail);
      return Object.entries(data)
        .map(([field, messages]) => `${field}: ${[].concat(messages).join(" ")}`)
        .join("; ");
    }
    return `The server answered ${status}.`;
  }

  // fetch() with the session cookie and CSRF token; resolves to {ok, status, data}. The
  // X-Loadtest-Via header tells the API that the change comes from these pages, so that
  // events and the configuration history say "via page" rather than "via api".
  async function api(method, url, body) {
    const options = {
      method,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken(), "X-Loadtest-Via": "page" },
    };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, options);
    } catch (error) {
      return { ok: false, status: 0, data: { detail: `The server cannot be reached (${error.message}).` } };
    }
    const type = response.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await response.json() : null;
    return { ok: response.ok, status: response.status, data };
  }

  function showResult(message, kind) {
    const box = document.getElementById("action-result");
    if (!box) return;
    box.className = `alert alert-${kind === "error" ? "danger" : kind || "success"}`;
    box.textContent = message;
  }

  // Call the API for a button, say what happened, and pass the answer on.
  async function act(method, url, body, doneMessage) {
    const answer = await api(method, url, body);
    if (answer.ok) showResult(doneMessage, "success");
    else showResult(describeError(answer.status, answer.data), "error");
    return answer;
  }

  const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  const oneDecimal = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const upToOneDecimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  const dash = "—";

  const format = {
    count: (n) => (n === null || n === undefined ? dash : integer.format(n)),
    ms: (n) => (n === null || n === undefined ? dash : `${oneDecimal.format(n)} ms`),
    rate: (n) => (n === null || n === undefined ? dash : oneDecimal.format(n)),
    seconds: (n) => (n === null || n === undefined ? dash : `${upToOneDecimal.format(n)} s`),
    percent: (fraction) =>
      fraction === null || fraction === undefined || !isFinite(fraction) ? dash : `${oneDecimal.format(fraction * 100)} %`,
    duration(seconds) {
      if (seconds === null || seconds === undefined || !isFinite(seconds)) return dash;
      const s = Math.max(0, Math.round(seconds));
      const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), rest = s % 60;
      const two = (x) => String(x).padStart(2, "0");
      return h ? `${h}:${two(m)}:${two(rest)}` : `${m}:${two(rest)}`;
    },
    time: (iso) => (iso ? new Date(iso).toLocaleTimeString() : dash),
    ago(epochOrIso) {
      if (!epochOrIso) return dash;
      const at = typeof epochOrIso === "number" ? epochOrIso * 1000 : Date.parse(epochOrIso);
      const seconds = Math.max(0, Math.round((Date.now() - at) / 1000));
      return seconds < 90 ? `${seconds} s ago` : `${Math.round(seconds / 60)} min ago`;
    },
  };

  // Fill the elements marked data-field="name" inside root with text.
  function fill(root, values) {
    for (const [name, text] of Object.entries(values)) {
      root.querySelectorAll(`[data-field="${name}"]`).forEach((el) => (el.textContent = text));
    }
  }

  function element(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (name === "class") node.className = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
    return node;
  }

  // GET /api/workers/'s summary as the pages' worker counts (templates/dashboard/
  // _worker_counts.html): load workers and their processes, and the control worker apart.
  function workerCounts(summary) {
    const processes = summary.load_processes;
    return {
      load_workers: format.count(summary.load_workers),
      load_processes: `${format.count(processes)} process${processes === 1 ? "" : "es"}`,
      control_workers: format.count(summary.control_workers),
    };
  }

  // Emergency stop: every running session, after the user confirms (admins only: the API
  // refuses anyone else).
  function wireEmergencyStop() {
    document.querySelectorAll("[data-emergency-stop]").forEach((button) =>
      button.addEventListener("click", async () => {
        if (!window.confirm("Stop every running session on every worker now?")) return;
        const answer = await act("POST", "/api/emergency-stop/", undefined, "Emergency stop sent.");
        if (answer.ok) {
          const stopped = answer.data.stopped_sessions || [];
          showResult(`Emergency stop: ${stopped.length} session(s) stopping.`, "warning");
        }
      })
    );
  }

  document.addEventListener("DOMContentLoaded", wireEmergencyStop);

  return { api, act, showResult, describeError, format, fill, element, workerCounts };
})();
