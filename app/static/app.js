"use strict";
// visrag demo page: POST /context with the chosen image, show neighbours, votes and the block.
(() => {
  const $ = (id) => document.getElementById(id);
  const form = $("query-form");
  const fileInput = $("image");
  const drop = $("drop");
  const keyInput = $("api-key");
  let objectUrls = [];

  keyInput.value = sessionStorage.getItem("visrag-api-key") || "";
  keyInput.addEventListener("change", () => sessionStorage.setItem("visrag-api-key", keyInput.value));

  function authHeaders() {
    const key = keyInput.value.trim();
    return key ? { Authorization: `Bearer ${key}` } : {};
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function showError(message) {
    $("error").textContent = message;
    $("error").hidden = !message;
  }

  async function refreshStatus() {
    const badge = $("status");
    try {
      const r = await fetch("ready");
      const body = await r.json();
      badge.textContent = body.ready ? "ready" : `${body.status}${body.reason ? ": " + body.reason : ""}`;
      badge.className = "badge " + (body.ready ? "ok" : body.status === "failed" ? "bad" : "wait");
      if (!body.ready && body.status !== "failed") setTimeout(refreshStatus, 1000);
      if (body.ready) refreshInfo();
    } catch (err) {
      badge.textContent = "unreachable";
      badge.className = "badge bad";
      setTimeout(refreshStatus, 3000);
    }
  }

  async function refreshInfo() {
    // Model and index size in the header; a loud note when the weights are the random test ones.
    try {
      const r = await fetch("info", { headers: authHeaders() });
      if (!r.ok) return;
      const info = await r.json();
      const model = (info.manifest.image_model || {}).id || "";
      $("model").textContent = `${model.split("/").pop()} · ${info.runtime.index_size} items · ${info.runtime.device}`;
      if (/tiny-random/.test(model)) {
        $("warning").textContent = "Demo model: a tiny, randomly initialised DINOv3. Similarities "
          + "and neighbours are meaningless; configure a real checkpoint for real retrieval.";
        $("warning").hidden = false;
      }
    } catch (err) {
      // the header line is a nicety; the page works without it
    }
  }

  function setPreview(file) {
    const preview = $("preview");
    if (!file) return;
    const url = URL.createObjectURL(file);
    preview.src = url;
    preview.hidden = false;
    $("drop-text").textContent = file.name;
  }

  fileInput.addEventListener("change", () => setPreview(fileInput.files[0]));
  ["dragenter", "dragover"].forEach((ev) =>
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((ev) =>
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => {
    if (e.dataTransfer.files.length) {
      fileInput.files = e.dataTransfer.files;
      setPreview(fileInput.files[0]);
    }
  });

  async function loadThumbnail(img, url) {
    // Thumbnails may need the API key, which an <img src> cannot send: fetch, then a blob URL.
    try {
      const r = await fetch(url + "?size=256", { headers: authHeaders() });
      if (!r.ok) return;
      const blobUrl = URL.createObjectURL(await r.blob());
      objectUrls.push(blobUrl);
      img.src = blobUrl;
    } catch (err) {
      img.alt = "thumbnail unavailable";
    }
  }

  function renderNeighbours(cases) {
    objectUrls.forEach((u) => URL.revokeObjectURL(u));
    objectUrls = [];
    const grid = $("neighbours");
    grid.replaceChildren();
    if (!cases.length) {
      grid.append(el("p", "muted", "No indexed case matched."));
      return;
    }
    for (const c of cases) {
      const card = el("div", "card");
      card.dataset.id = c.id;
      const img = el("img");
      img.alt = `neighbour ${c.rank}: ${c.id}`;
      loadThumbnail(img, c.image_url);
      const body = el("div", "body");
      body.append(
        el("span", "rank", `#${c.rank}`),
        el("span", "score", `${c.similarity_pct}%`),
        el("span", "cos", `cos ${c.score.toFixed(3)}`),
      );
      const bar = el("div", "bar");
      const fill = el("span");
      fill.style.width = `${Math.max(0, Math.min(100, c.similarity_pct))}%`;
      bar.append(fill);
      const chips = el("div", "chips");
      if (c.labels.length) {
        c.labels.forEach((lb) => chips.append(el("span", "chip", `${lb.count} × ${lb.name}`)));
      } else {
        chips.append(el("span", "chip none", $("language").value === "es" ? "sin daño" : "no damage"));
      }
      body.append(bar, chips, el("div", "zone", `${c.zone_name} · ${c.area_name}`));
      card.append(img, body);
      grid.append(card);
    }
  }

  function renderVotes(votes) {
    const list = $("votes");
    list.replaceChildren();
    const es = $("language").value === "es";
    for (const v of votes) {
      const w = v.weighted.toFixed(2);
      list.append(el("li", "", es
        ? `${v.name}: ${v.support} de ${v.neighbours} vecinos, ponderado ${w.replace(".", ",")}`
        : `${v.name}: ${v.support} of ${v.neighbours} neighbours, weighted ${w}`));
    }
  }

  function renderEstimates(estimates) {
    const list = $("estimates");
    list.replaceChildren();
    const es = $("language").value === "es";
    if (!estimates || !estimates.length) {
      list.append(el("li", "muted", es ? "ninguna sobre el umbral" : "none above the threshold"));
      return;
    }
    for (const e of estimates) {
      const p = e.probability.toFixed(2);
      list.append(el("li", "", es
        ? `probable: ${e.name}, ${p.replace(".", ",")} (vecinos: ${e.support} de ${e.neighbours})`
        : `likely: ${e.name}, ${p} (neighbours: ${e.support} of ${e.neighbours})`));
    }
  }

  // The label set's guarantee and the novelty warning, in the service's own words, under the
  // estimates (their elements are made here on first use).
  function renderTrust(body) {
    const notes = [["label-set", body.label_set && body.label_set.statement, ""],
                   ["novelty", body.novelty && body.novelty.note, "error"]];
    let after = $("estimates");
    for (const [id, text, className] of notes) {
      let node = $(id);
      if (!node) {
        node = el("p", className);
        node.id = id;
        after.after(node);
      }
      node.textContent = text || "";
      node.hidden = !text;
      after = node;
    }
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError("");
    const file = fileInput.files[0];
    if (!file) { showError("Choose an image first."); return; }
    const data = new FormData();
    data.append("image", file);
    for (const name of ["k", "mode", "language", "format", "text", "labels_any"]) {
      const value = $(name).value.trim();
      if (value) data.append(name, value);
    }
    data.append("max_examples", $("k").value || "5");
    $("submit").disabled = true;
    $("submit").textContent = "Searching…";
    try {
      const r = await fetch("context", { method: "POST", body: data, headers: authHeaders() });
      const body = await r.json();
      if (!r.ok) {
        showError(`${r.status} ${body.error_type}: ${body.error}`);
        return;
      }
      renderNeighbours(body.cases);
      renderVotes(body.label_votes);
      renderEstimates(body.label_estimates);
      renderTrust(body);
      $("context").textContent = body.context;
      $("copy").disabled = false;
      const total = Object.values(body.timings).reduce((a, b) => a + b, 0);
      $("timing").textContent = `${body.mode} · ${total.toFixed(0)} ms in the pipeline`;
    } catch (err) {
      showError(`request failed: ${err}`);
    } finally {
      $("submit").disabled = false;
      $("submit").textContent = "Find similar cases";
    }
  });

  $("copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("context").textContent);
      $("copy").textContent = "copied";
      setTimeout(() => { $("copy").textContent = "copy"; }, 1200);
    } catch (err) {
      $("copy").textContent = "select and copy";
    }
  });

  refreshStatus();
})();
