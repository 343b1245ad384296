"use strict";
// visrag demo page: POST /context with the chosen image, show neighbours, votes and the block.
(() => {
  const $ = (id) => document.getElementById(id);
  const form = $("query-form");
  const fileInput = $("image");
  const drop = $("drop");
  const keyInput = $("api-key");
  let objectUrls = [];
  const SVG = "http://www.w3.org/2000/svg";

  // The page's own words; the context block and label names come translated from the service.
  const TEXT = {
    en: {
      subtitle: "similar verified cases for a VLM prompt",
      drop: "Drop an image here or click to choose one",
      mode: "mode", language: "language", format: "format", text: "text",
      labels_any: "labels (any)", api_key: "API key",
      submit: "Find similar cases", searching: "Searching…",
      samples: "Or click a held-out sample photo (not indexed):",
      neighbours: "Neighbours", no_query: "No query yet.", no_match: "No indexed case matched.",
      votes: "Label votes", estimates: "Label estimates",
      estimates_note: "(a model trained on the indexed cases; estimates, not facts)",
      none_above: "none above the threshold", context: "Context block", copy: "copy",
      copied: "copied", close: "close", choose: "Choose an image first.",
      no_damage: "no damage", truth: "True labels of the sample: ",
      pipeline: "ms in the pipeline", enlarge: "click to enlarge",
      explain: "where is the damage", region: "region (x,y,w,h)",
      where: "Where is the damage", no_where: "No part of the photo resembles indexed damage.",
      crops: "Matched indexed regions",
      ph_text: "caption for mode hybrid, e.g. scratches on the hood",
      ph_labels: "optional filter, e.g. dent, crack", ph_key: "only if the server requires one",
      warning: "Not a real model: a tiny, randomly initialised DINOv3. Its 'contrast' pooling "
        + "finds the damage drawn on this synthetic set; on real photos it means nothing. "
        + "Configure a real checkpoint for real retrieval.",
    },
    es: {
      subtitle: "casos verificados similares para el prompt de un VLM",
      drop: "Suelta aquí una imagen o haz clic para elegirla",
      mode: "modo", language: "idioma", format: "formato", text: "texto",
      labels_any: "etiquetas (alguna)", api_key: "clave de API",
      submit: "Buscar casos similares", searching: "Buscando…",
      samples: "O haz clic en una foto de muestra reservada (no indexada):",
      neighbours: "Vecinos", no_query: "Aún no hay consulta.",
      no_match: "Ningún caso indexado coincide.",
      votes: "Votos de etiquetas", estimates: "Estimaciones de etiquetas",
      estimates_note: "(un modelo entrenado con los casos indexados; estimaciones, no hechos)",
      none_above: "ninguna sobre el umbral", context: "Bloque de contexto", copy: "copiar",
      copied: "copiado", close: "cerrar", choose: "Elige primero una imagen.",
      no_damage: "sin daño", truth: "Etiquetas verdaderas de la muestra: ",
      pipeline: "ms en el proceso", enlarge: "haz clic para ampliar",
      explain: "dónde está el daño", region: "zona (x,y,w,h)",
      where: "Dónde está el daño", no_where: "Ninguna parte de la foto se parece a daños indexados.",
      crops: "Zonas indexadas coincidentes",
      ph_text: "descripción para el modo hybrid, p. ej. arañazos en el capó",
      ph_labels: "filtro opcional, p. ej. dent, crack", ph_key: "solo si el servidor la exige",
      warning: "No es un modelo real: un DINOv3 diminuto con pesos aleatorios. Su pooling "
        + "'contrast' encuentra los daños dibujados de este conjunto sintético; con fotos "
        + "reales no significa nada. Configura un checkpoint real para una búsqueda real.",
    },
  };
  const lang = () => ($("language").value === "es" ? "es" : "en");
  const t = (key) => TEXT[lang()][key];

  function applyLanguage() {
    document.documentElement.lang = lang();
    document.querySelectorAll("[data-i18n]").forEach((node) => { node.textContent = t(node.dataset.i18n); });
    document.querySelectorAll(".thumb").forEach((node) => { node.title = t("enlarge"); });
    document.querySelectorAll("[data-i18n-placeholder]").forEach((node) => {
      node.placeholder = t(node.dataset.i18nPlaceholder);
    });
    if (sample && !$("truth").hidden) showTruth();
  }

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
    if (message) clearResults(); // an error must not sit beside the previous query's answer
  }

  function clearResults() {
    const none = el("p", "muted", t("no_query"));
    none.dataset.i18n = "no_query";
    $("neighbours").replaceChildren(none);
    $("votes").replaceChildren();
    renderEstimates([]);
    $("context").textContent = "";
    $("copy").disabled = true;
    $("timing").textContent = "";
    $("truth").hidden = true;
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
      if (info.manifest.image_model.random_init || /tiny-random/.test(model)) {
        $("warning").dataset.i18n = "warning";
        $("warning").textContent = t("warning");
        $("warning").hidden = false;
      }
    } catch (err) {
      // the header line is a nicety; the page works without it
    }
  }

  let sample = null; // the clicked sample, whose true labels are shown after the answer

  async function loadSamples() {
    try {
      const r = await fetch("demo/samples");
      if (!r.ok) return;
      const list = await r.json();
      const strip = $("sample-strip");
      for (const s of list) {
        const b = el("button", "sample");
        b.type = "button";
        b.title = s.file;
        const img = el("img");
        img.src = s.url;
        img.alt = `sample ${s.file}`;
        b.append(img);
        b.addEventListener("click", () => querySample(s, b));
        strip.append(b);
      }
      $("samples").hidden = list.length === 0;
    } catch (err) {
      // no samples outside `visrag demo`
    }
  }

  async function querySample(s, button) {
    const r = await fetch(s.url);
    if (!r.ok) { showError(`sample ${s.file}: ${r.status}`); return; }
    const file = new File([await r.blob()], s.file, { type: "image/jpeg" });
    const transfer = new DataTransfer();
    transfer.items.add(file);
    fileInput.files = transfer.files;
    setPreview(file);
    document.querySelectorAll(".strip button").forEach((x) => x.classList.remove("chosen"));
    button.classList.add("chosen");
    sample = s;
    form.requestSubmit();
  }

  function showTruth() {
    const truth = $("truth");
    if (!sample) { truth.hidden = true; return; }
    const es = lang() === "es";
    const names = sample.labels.map((lb) => `${lb.count} × ${es ? lb.name_es : lb.name}`);
    truth.textContent = t("truth") + (names.length ? names.join(", ") : t("no_damage"));
    truth.hidden = false;
  }

  function setPreview(file) {
    const preview = $("preview");
    if (!file) return;
    const url = URL.createObjectURL(file);
    preview.src = url;
    preview.hidden = false;
    delete $("drop-text").dataset.i18n; // the file's name, in any language
    $("drop-text").textContent = file.name;
  }

  fileInput.addEventListener("change", () => { sample = null; setPreview(fileInput.files[0]); });
  ["dragenter", "dragover"].forEach((ev) =>
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((ev) =>
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => {
    if (e.dataTransfer.files.length) {
      sample = null;
      fileInput.files = e.dataTransfer.files;
      setPreview(fileInput.files[0]);
    }
  });

  async function loadThumbnail(img, url, size = 256) {
    // Thumbnails may need the API key, which an <img src> cannot send: fetch, then a blob URL.
    try {
      const r = await fetch(`${url}?size=${size}`, { headers: authHeaders() });
      if (!r.ok) return;
      const blobUrl = URL.createObjectURL(await r.blob());
      objectUrls.push(blobUrl);
      img.src = blobUrl;
    } catch (err) {
      img.alt = "thumbnail unavailable";
    }
  }

  async function loadAnnotation(imageUrl) {
    // The verified outlines of an indexed image ({size, shapes}); null when unavailable.
    try {
      const r = await fetch(imageUrl.replace(/\/image$/, "/annotation"), { headers: authHeaders() });
      return r.ok ? await r.json() : null;
    } catch (err) {
      return null;
    }
  }

  function outlines(annotation, fit) {
    // An SVG in the original image's pixel space laid over the picture (fit: how it is scaled).
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "outlines");
    svg.setAttribute("viewBox", `0 0 ${annotation.size[0]} ${annotation.size[1]}`);
    svg.setAttribute("preserveAspectRatio", fit);
    for (const shape of annotation.shapes) {
      const polygon = document.createElementNS(SVG, "polygon");
      polygon.setAttribute("points", shape.polygon.map((p) => p.join(",")).join(" "));
      polygon.dataset.label = shape.label;
      svg.append(polygon);
    }
    return svg;
  }

  function openZoom(c, annotation) {
    const frame = $("zoom-frame");
    const img = el("img");
    img.alt = c.id;
    loadThumbnail(img, c.image_url, 512);
    frame.replaceChildren(img);
    frame.style.aspectRatio = annotation && annotation.size
      ? `${annotation.size[0]} / ${annotation.size[1]}` : "";
    if (annotation && annotation.size && annotation.shapes.length) frame.append(outlines(annotation, "none"));
    $("zoom-caption").textContent = `#${c.rank} · ${c.similarity_pct}% · ${c.description}`;
    $("zoom").showModal();
  }

  function renderNeighbours(cases) {
    objectUrls.forEach((u) => URL.revokeObjectURL(u));
    objectUrls = [];
    const grid = $("neighbours");
    grid.replaceChildren();
    if (!cases.length) {
      grid.append(el("p", "muted", t("no_match")));
      return;
    }
    for (const c of cases) {
      const card = el("div", "card");
      card.dataset.id = c.id;
      const img = el("img");
      img.alt = `neighbour ${c.rank}: ${c.id}`;
      loadThumbnail(img, c.image_url);
      const thumb = el("div", "thumb");
      thumb.title = t("enlarge");
      thumb.append(img);
      const annotation = loadAnnotation(c.image_url);
      annotation.then((a) => { if (a && a.size && a.shapes.length) thumb.append(outlines(a, "xMidYMid slice")); });
      thumb.addEventListener("click", async () => openZoom(c, await annotation));
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
        chips.append(el("span", "chip none", t("no_damage")));
      }
      body.append(bar, chips, el("div", "zone", `${c.zone_name} · ${c.area_name}`));
      card.append(thumb, body);
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

  async function renderWhere(body, file) {
    // The uploaded photo with the heatmap overlay and the candidate boxes drawn on it, and the
    // crops of the indexed regions it matched (a region query's hits or the areas' neighbours).
    const panel = $("where");
    const heat = body.heatmap;
    const region = body.region;
    if (!heat && !region) { panel.hidden = true; return; }
    panel.hidden = false;
    const frame = $("where-frame");
    const photo = el("img");
    photo.id = "where-photo";
    photo.alt = file.name;
    photo.src = URL.createObjectURL(file);
    objectUrls.push(photo.src);
    frame.replaceChildren(photo);
    try { await photo.decode(); } catch (err) { /* drawn anyway, sized by the heatmap */ }
    const width = heat ? heat.width : photo.naturalWidth;
    const height = heat ? heat.height : photo.naturalHeight;
    frame.style.aspectRatio = `${width} / ${height}`;
    if (heat) {
      const overlay = el("img", "where-overlay");
      overlay.id = "where-overlay";
      overlay.alt = "";
      overlay.src = heat.overlay_png;
      frame.append(overlay);
    }
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "outlines boxes");
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("preserveAspectRatio", "none");
    const boxes = (heat ? heat.areas.map((a) => ["area-box", a.box]) : [])
      .concat(region ? [["region-box", region.box]] : []);
    for (const [cls, [x, y, w, h]] of boxes) {
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("class", cls);
      for (const [k, v] of Object.entries({ x, y, width: w, height: h })) rect.setAttribute(k, v);
      svg.append(rect);
    }
    frame.append(svg);
    const list = $("where-areas");
    list.replaceChildren();
    for (const area of heat ? heat.areas : []) {
      const names = area.votes.filter((v) => v.predicted).map((v) => v.name).join(", ");
      list.append(el("li", "", `${area.position[lang()]} · ${area.peak.toFixed(2)}${names ? " · " + names : ""}`));
    }
    if (heat && !heat.areas.length) list.append(el("li", "muted", t("no_where")));
    const hits = region ? region.hits : (heat ? heat.areas.flatMap((a) => a.neighbours) : []);
    const crops = $("region-crops");
    crops.replaceChildren();
    const seen = new Set();
    for (const hit of hits) {
      if (seen.has(hit.id)) continue;
      seen.add(hit.id);
      const card = el("figure", "card crop");
      const img = el("img");
      img.alt = hit.id;
      loadThumbnail(img, hit.crop_url, 128);
      const labels = hit.labels.map((lb) => (lang() === "es" ? lb.name_es : lb.name)).join(", ");
      card.append(img, el("figcaption", "", `${Math.round(100 * hit.score)}% · ${labels}`));
      crops.append(card);
    }
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError("");
    const file = fileInput.files[0];
    if (!file) { showError(t("choose")); return; }
    const data = new FormData();
    data.append("image", file);
    for (const name of ["k", "mode", "language", "format", "text", "labels_any"]) {
      const value = $(name).value.trim();
      if (value) data.append(name, value);
    }
    data.append("max_examples", $("k").value || "5");
    if ($("explain").checked) data.append("explain", "heatmap");
    if ($("region").value.trim()) data.append("region", $("region").value.trim());
    $("submit").disabled = true;
    $("submit").textContent = t("searching");
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
      await renderWhere(body, file);
      showTruth();
      $("copy").disabled = false;
      const total = Object.values(body.timings).reduce((a, b) => a + b, 0);
      $("timing").textContent = `${body.mode} · ${total.toFixed(0)} ${t("pipeline")}`;
    } catch (err) {
      showError(`request failed: ${err}`);
    } finally {
      $("submit").disabled = false;
      $("submit").textContent = t("submit");
    }
  });

  $("copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("context").textContent);
      $("copy").textContent = t("copied");
      setTimeout(() => { $("copy").textContent = t("copy"); }, 1200);
    } catch (err) {
      $("copy").textContent = "select and copy";
    }
  });

  $("language").addEventListener("change", applyLanguage);
  refreshStatus();
  loadSamples();
})();
