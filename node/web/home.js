// The network page, live: status, latest blocks and txs from the feed, and two charts
// drawn on canvases (committed tx/s over the last 5 minutes, seconds between blocks).
"use strict";

(function () {
  const E = window.Explorer;
  const LATEST = 10;
  const WINDOW_MS = 10 * 60 * 1000;
  const MAX_BLOCKS = 2000;
  const BUCKET_MS = 10 * 1000;
  const BUCKETS = 30;
  const INTERVALS = 60;
  let blocks = []; // summaries, oldest first: {height, hash, time, proposer, txs}

  const byId = (id) => document.getElementById(id);

  function setText(id, text) {
    const node = byId(id);
    if (node) node.textContent = text;
  }

  function showStatus(status) {
    if (!status) return;
    const height = byId("height");
    if (height) {
      height.replaceChildren(status.height
        ? E.el("a", { href: E.blockUrl(status.height) }, String(status.height))
        : "0 (genesis)");
    }
    setText("round", String(status.round));
    setText("mempool", `${status.mempool} pending`);
    setText("peer-count", String(status.peers.length));
    setText("peers", status.peers.length ? status.peers.join(", ") : "none");
    const last = byId("last-block");
    if (last) last.replaceChildren(E.timeEl(status.last_block_time));
    const validators = byId("validators");
    if (validators) {
      validators.replaceChildren(...status.validators.map((v) => E.el("tr", {},
        E.el("td", {}, v.name),
        E.el("td", {}, status.height === 0 ? "no commit yet"
          : E.el("span", { class: v.signed ? "badge ok" : "badge bad" },
            v.signed ? "signed" : "not in the commit")))));
    }
  }

  function blockRow(b) {
    return E.el("tr", {},
      E.el("td", {}, E.el("a", { href: E.blockUrl(b.height) }, String(b.height))),
      E.el("td", {}, E.hashLink(E.blockUrl(b.height), b.hash)),
      E.el("td", {}, E.timeEl(b.time)),
      E.el("td", {}, b.proposer),
      E.el("td", {}, String(b.txs)));
  }

  function txRow(tx) {
    return E.el("tr", {},
      E.el("td", {}, E.hashLink(E.txUrl(tx.hash), tx.hash)),
      E.el("td", {}, E.el("a", { href: E.blockUrl(tx.height) }, String(tx.height))),
      E.el("td", {}, E.words(tx.words)));
  }

  // Put rows on top of a table body, keeping LATEST rows and no empty-state row.
  function prepend(id, rows, fresh) {
    const body = byId(id);
    if (!body || !rows.length) return;
    for (const empty of body.querySelectorAll(".empty")) empty.closest("tr").remove();
    for (const row of rows.slice().reverse()) {
      if (fresh) row.className = "fresh";
      body.prepend(row);
    }
    while (body.rows.length > LATEST) body.deleteRow(body.rows.length - 1);
  }

  function replace(id, rows) {
    const body = byId(id);
    if (body && rows.length) body.replaceChildren(...rows);
  }

  function keep(block) {
    if (blocks.length && block.height <= blocks[blocks.length - 1].height) return false;
    blocks.push(block);
    const oldest = block.time - WINDOW_MS;
    while (blocks.length > MAX_BLOCKS || (blocks.length > 1 && blocks[0].time < oldest)) {
      blocks.shift();
    }
    return true;
  }

  // Charts.
  function color(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#0b5cab";
  }

  // Bars of `values`, oldest left; `from` and `to` label the ends of the time axis.
  function drawBars(canvas, values, unit, from, to) {
    if (!canvas) return;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    ctx.clearRect(0, 0, width, height);
    const left = 44;
    const top = 10;
    const bottom = height - 20;
    const max = Math.max(...values, 0) || 1;
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = color("--muted");
    ctx.textAlign = "right";
    ctx.fillText(max.toFixed(max < 10 ? 2 : 0), left - 6, top + 8);
    ctx.fillText("0", left - 6, bottom);
    ctx.textAlign = "left";
    ctx.fillText(from, left, height - 4);
    ctx.textAlign = "right";
    ctx.fillText(to, width - 2, height - 4);
    ctx.strokeStyle = color("--line");
    ctx.beginPath();
    ctx.moveTo(left, bottom + 0.5);
    ctx.lineTo(width, bottom + 0.5);
    ctx.stroke();
    if (!values.length) return;
    const step = (width - left) / values.length;
    ctx.fillStyle = color("--accent");
    values.forEach((v, i) => {
      const h = (v / max) * (bottom - top);
      ctx.fillRect(left + i * step + 1, bottom - h, Math.max(1, step - 2), h);
    });
    canvas.setAttribute("aria-label", `${from} to ${to}: highest ${max.toFixed(2)} ${unit}`);
  }

  function txRates(now) {
    const rates = new Array(BUCKETS).fill(0);
    const start = now - BUCKETS * BUCKET_MS;
    for (const b of blocks) {
      if (b.time <= start || b.time > now) continue;
      const i = Math.min(BUCKETS - 1, Math.floor((b.time - start) / BUCKET_MS));
      rates[i] += b.txs / (BUCKET_MS / 1000);
    }
    return rates;
  }

  function draw() {
    const now = E.nodeNow();
    drawBars(byId("tps-chart"), txRates(now), "tx/s", "5 min ago", "now");
    const recent = blocks.slice(-INTERVALS - 1);
    const gaps = recent.slice(1).map((b, i) => (b.time - recent[i].time) / 1000);
    const first = recent.length ? `block ${recent[0].height}` : "";
    const last = recent.length ? `block ${recent[recent.length - 1].height}` : "";
    drawBars(byId("interval-chart"), gaps, "s", first, last);
    const minute = blocks.filter((b) => b.time > now - 60000 && b.time <= now);
    setText("tps", (minute.reduce((sum, b) => sum + b.txs, 0) / 60).toFixed(2));
  }

  function onSnapshot(data) {
    blocks = [];
    for (const b of data.blocks) keep(b);
    showStatus(data.status);
    replace("blocks", blocks.slice(-LATEST).reverse().map(blockRow));
    replace("txs", data.txs.map(txRow));
    draw();
  }

  function onBlock(data) {
    if (!keep(data.block)) return;
    showStatus(data.status);
    prepend("blocks", [blockRow(data.block)], true);
    prepend("txs", data.txs.map(txRow), true);
    draw();
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (document.body.dataset.page !== "home") return;
    E.connect({ snapshot: onSnapshot, block: onBlock, status: (data) => showStatus(data.status) });
    setInterval(draw, 2000);
    window.addEventListener("resize", draw);
  });
})();
