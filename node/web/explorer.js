// The Bakong explorer's shared script: local times, the live feed (Server-Sent Events
// from /v1/events), and the live parts of the transaction, block and KHQR pages.
// Pages work without it. Nothing here writes HTML: text goes in as text nodes.
"use strict";

(function () {
  const pad = (n) => String(n).padStart(2, "0");

  function localTime(ms) {
    const d = new Date(ms);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function duration(ms) {
    let s = Math.max(0, Math.floor(ms / 1000));
    const days = Math.floor(s / 86400); s -= days * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const min = Math.floor(s / 60); s -= min * 60;
    if (days) return `${days} day${days > 1 ? "s" : ""}` + (h ? ` ${h} h` : "");
    if (h) return `${h} h` + (min ? ` ${min} min` : "");
    if (min) return `${min} min` + (s ? ` ${s} s` : "");
    return `${s} s`;
  }

  // An element with attributes and children (strings become text nodes).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(key, String(value));
    }
    for (const child of children) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const accountUrl = (id) => "/accounts/" + encodeURIComponent(id).replace(/%40/g, "@");
  const txUrl = (hash) => "/tx/" + encodeURIComponent(hash);
  const blockUrl = (height) => "/blocks/" + encodeURIComponent(height);

  function timeEl(ms) {
    if (ms === null || ms === undefined) return document.createTextNode("-");
    const t = el("time", { datetime: new Date(ms).toISOString(), "data-ms": ms }, localTime(ms));
    t.title = new Date(ms).toISOString();
    return t;
  }

  function hashLink(href, hash) {
    return el("a", { href, title: hash }, el("code", {}, hash.slice(0, 16)));
  }

  // Commands in words: [["text", "..."], ["account", "sokha@aba"], ...]
  function words(parts) {
    const span = el("span", {});
    for (const [kind, text] of parts || []) {
      span.append(kind === "account"
        ? el("a", { href: accountUrl(text), class: "account" }, text)
        : document.createTextNode(text));
    }
    return span;
  }

  function localizeTimes(root) {
    for (const t of (root || document).querySelectorAll("time[data-ms]")) {
      t.title = t.textContent;
      t.textContent = localTime(Number(t.dataset.ms));
    }
  }

  // The live feed. `handlers` maps an event name (snapshot, block, status) to a function
  // of its data. The browser reconnects by itself after a dropped stream; a refused one
  // (too many clients) is retried every 10 s.
  let offset = 0; // the node's clock minus ours
  function connect(handlers) {
    const live = document.getElementById("live");
    const show = (text, on) => {
      if (!live) return;
      live.textContent = text;
      live.className = on ? "live-on" : "live-off";
    };
    let source = null;
    const open = () => {
      source = new EventSource("/v1/events");
      source.onopen = () => show("live", true);
      source.onerror = () => {
        show("reconnecting…", false);
        if (source.readyState === EventSource.CLOSED) setTimeout(open, 10000);
      };
      for (const name of ["snapshot", "block", "status"]) {
        source.addEventListener(name, (event) => {
          let data;
          try { data = JSON.parse(event.data); } catch (e) { return; }
          if (typeof data.now === "number") offset = data.now - Date.now();
          if (handlers[name]) handlers[name](data);
        });
      }
    };
    open();
    window.addEventListener("pagehide", () => source && source.close());
  }

  const nodeNow = () => Date.now() + offset;

  async function getJson(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    return response.ok ? response.json() : null;
  }

  // A pending transaction: reload when a block settles it.
  function followTx() {
    const status = document.getElementById("tx-status");
    if (!status || status.dataset.status !== "pending") return;
    const hash = location.pathname.split("/").pop();
    connect({
      block: async () => {
        const found = await getJson("/v1/transactions/" + encodeURIComponent(hash));
        if (found && found.status !== "pending") location.reload();
      },
    });
  }

  // The newest block: its "next" appears when the next block commits.
  function followBlock() {
    const next = document.getElementById("next-block");
    if (!next) return;
    const height = Number(location.pathname.split("/").pop());
    connect({
      block: (data) => {
        if (!Number.isInteger(height) || data.block.height <= height) return;
        next.replaceChildren(el("a", { href: blockUrl(height + 1) }, `block ${height + 1}`));
      },
    });
  }

  // A KHQR code: its countdown ticks, and the page reloads when a payment arrives.
  function followCode() {
    const countdowns = document.querySelectorAll(".countdown[data-expires]");
    if (countdowns.length) {
      offset = Number(countdowns[0].dataset.now) - Date.now();
      const tick = () => {
        for (const c of countdowns) {
          const left = Number(c.dataset.expires) - nodeNow();
          c.textContent = left > 0 ? `(in ${duration(left)})` : `(expired ${duration(-left)} ago)`;
        }
      };
      tick();
      setInterval(tick, 1000);
    }
    const status = document.getElementById("khqr-status");
    if (!status || status.dataset.status === "paid") return;
    const md5 = status.dataset.md5;
    const paid = Number(status.dataset.paid);
    connect({
      block: async () => {
        const found = await getJson("/v1/transactions?khqr_md5=" + encodeURIComponent(md5));
        if (found && found.transactions.length > paid) location.reload();
      },
    });
  }

  window.Explorer = { el, words, timeEl, hashLink, accountUrl, txUrl, blockUrl, localTime,
    duration, connect, nodeNow, localizeTimes };

  document.addEventListener("DOMContentLoaded", () => {
    localizeTimes(document);
    const page = document.body.dataset.page;
    if (page === "tx") followTx();
    if (page === "block") followBlock();
    if (page === "khqr") followCode();
  });
})();
