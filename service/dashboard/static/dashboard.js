// Wheelwright dashboard: the pages work without this; it only keeps running builds and project
// builds live (polling the dashboard's JSON) and adds copy buttons. No framework, nothing
// fetched elsewhere.
"use strict";

// One ask of a live endpoint: its JSON, or null when it did not answer (try again later).
async function askLive(url) {
  try {
    const response = await fetch(url, {
      headers: { Accept: "application/json" }, credentials: "same-origin",
    });
    if (!response.ok) throw new Error(String(response.status));
    return await response.json();
  } catch (error) {
    return null;
  }
}

function followBuild(article) {
  const url = article.dataset.live;
  if (!url) return;
  const log = document.getElementById("log");
  let cursor = article.dataset.cursor || "0";
  const tick = async () => {
    const answer = await askLive(`${url}?cursor=${encodeURIComponent(cursor)}`);
    if (answer === null) {
      setTimeout(tick, 5000);
      return;
    }
    if (answer.terminal) {  // the outcome, the wheel and the stored log come with the page
      window.location.reload();
      return;
    }
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    for (const line of answer.lines) {
      const span = document.createElement("span");
      if (line.kind) span.className = `l-${line.kind}`;
      span.textContent = `${line.text}\n`;
      log.appendChild(span);
    }
    while (log.childNodes.length > 2000) log.removeChild(log.firstChild);
    if (atBottom) log.scrollTop = log.scrollHeight;
    cursor = answer.cursor;
    document.getElementById("timeline").innerHTML = answer.timeline;
    document.getElementById("summary").innerHTML = answer.summary;
    setTimeout(tick, 1000);
  };
  const log0 = document.getElementById("log");
  log0.scrollTop = log0.scrollHeight;
  setTimeout(tick, 1000);
}

function followProject(article) {
  const url = article.dataset.live;
  if (!url) return;
  const tick = async () => {
    const answer = await askLive(url);
    if (answer === null) {
      setTimeout(tick, 5000);
      return;
    }
    if (answer.terminal) {  // the uv configuration comes with the page
      window.location.reload();
      return;
    }
    document.getElementById("summary").innerHTML = answer.summary;
    document.getElementById("packages").innerHTML = answer.packages;
    setTimeout(tick, 2000);
  };
  setTimeout(tick, 2000);
}

function followRows(table) {
  const url = table.dataset.liveRows;
  const body = document.getElementById("rows");
  const tick = async () => {
    if (!body.querySelector('tr[data-terminal="false"]')) return;
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (response.ok) body.innerHTML = await response.text();
    } catch (error) { /* try again later */ }
    setTimeout(tick, 3000);
  };
  setTimeout(tick, 3000);
}

function copyButtons() {
  for (const button of document.querySelectorAll("button.copy")) {
    button.addEventListener("click", async () => {
      const text = document.getElementById(button.dataset.copy).textContent;
      const status = document.querySelector(".copy-status");
      try {
        await navigator.clipboard.writeText(text);
        status.textContent = "Copied.";
      } catch (error) {
        const range = document.createRange();
        range.selectNodeContents(document.getElementById(button.dataset.copy));
        window.getSelection().removeAllRanges();
        window.getSelection().addRange(range);
        status.textContent = "Selected: press Ctrl+C (or ⌘C) to copy.";
      }
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const article = document.querySelector("article.build");
  if (article) followBuild(article);
  const project = document.querySelector("article.project");
  if (project) followProject(project);
  const table = document.querySelector("table[data-live-rows]");
  if (table) followRows(table);
  copyButtons();
});
