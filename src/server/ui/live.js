// deployhook's dashboard: follows a running job's log and state (Server-Sent Events).
// Lines are added as text, never as HTML. Everything works without this script but the
// live updates.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const log = document.getElementById("log");
  const state = document.getElementById("state");
  if (!log || log.dataset.live !== "true" || !window.EventSource) return;
  const source = new EventSource(log.dataset.src + "?offset=" + log.dataset.offset);
  source.addEventListener("log", (e) => {
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.append(e.data + "\n");
    if (atEnd) log.scrollTop = log.scrollHeight;
  });
  source.addEventListener("state", (e) => {
    state.textContent = e.data;
    state.className = "state " + e.data;
    source.close();
  });
});
