/* panels.js: the live panels of the rendered book, drawn into <div class="hw2-live" data-panel="...">.
 *
 *   data-panel="matrix"     chapter 1: the matrix M of a valid convolution for any H, W, M, N
 *   data-panel="draw"       chapter 2: draw a character (or load a test image), see the CNN's answer
 *   data-panel="translate"  chapter 3: type Spanish, see both translators' answers and the attention
 *
 * The models run in the page (hw2live.js, loaded first); nothing leaves the machine. Each panel
 * element gets `element.hw2live`, the functions its controls call, and data-ready="1" once drawn.
 */
(function () {
  "use strict";
  const L = window.HW2Live;

  // ------------------------------------------------------------------ small helpers

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "className") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children.flat()) if (child != null) node.append(child);
    return node;
  }

  const hex = colour => [1, 3, 5].map(i => parseInt(colour.slice(i, i + 2), 16));
  /** A colour map from evenly spaced anchors: t in [0, 1] -> [r, g, b]. */
  function colourMap(anchors) {
    const rgb = anchors.map(hex);
    const map = t => {
      const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (rgb.length - 1);
      const i = Math.min(rgb.length - 2, Math.floor(x)), f = x - i;
      return rgb[i].map((v, k) => Math.round(v + f * (rgb[i + 1][k] - v)));
    };
    map.css = `linear-gradient(to right, ${anchors.join(", ")})`;
    return map;
  }
  // The matplotlib maps the chapters' static figures use.
  const VIRIDIS = colourMap(["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"]);
  const RDBU_R = colourMap(["#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582", "#d6604d", "#b2182b"]);
  const REDS = colourMap(["#fff5f0", "#fee0d2", "#fcbba1", "#fc9272", "#fb6a4a", "#ef3b2c", "#cb181d", "#a50f15", "#67000d"]);
  const GREYS = colourMap(["#ffffff", "#f0f0f0", "#d9d9d9", "#bdbdbd", "#969696", "#737373", "#525252", "#252525", "#000000"]);
  const GRAY_R = t => { const v = Math.round(255 * (1 - Math.min(1, Math.max(0, t)))); return [v, v, v]; };

  /** Paint `values` (h x w, row-major) into `canvas` at one pixel per value (CSS scales it up). */
  function paintMap(canvas, values, h, w, colour) {
    canvas.width = w;
    canvas.height = h;
    const context = canvas.getContext("2d"), image = context.createImageData(w, h);
    for (let i = 0; i < h * w; i++) {
      const [r, g, b] = colour(values[i]);
      image.data.set([r, g, b, 255], 4 * i);
    }
    context.putImageData(image, 0, 0);
  }

  /** A canvas sized `width` x `height` CSS pixels, sharp on high-DPI screens; returns its 2-D context. */
  function sizeCanvas(canvas, width, height) {
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.width = width + "px";
    canvas.style.height = height + "px";
    const context = canvas.getContext("2d");
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    return context;
  }

  function colourBar(map, low, high, label) {
    const format = v => (Math.abs(v) >= 10 ? v.toFixed(0) : v.toFixed(2)).replace("-", "\u2212");
    return el("div", {className: "hw2-colourbar"},
      el("span", {className: "hw2-colourbar-label", text: label}),
      el("span", {className: "hw2-colourbar-end", text: format(low)}),
      el("span", {className: "hw2-colourbar-ramp", style: `background: ${map.css}`}),
      el("span", {className: "hw2-colourbar-end", text: format(high)}));
  }

  function debounce(action, milliseconds) {
    let timer = null;
    return (...args) => { clearTimeout(timer); timer = setTimeout(() => action(...args), milliseconds); };
  }

  function slider(name, label, value, min, max, onChange) {
    const input = el("input", {type: "range", min, max, step: 1, value, id: name, "aria-label": label});
    const output = el("output", {for: name, text: String(value)});
    input.addEventListener("input", () => { output.textContent = input.value; onChange(Number(input.value)); });
    return {input, node: el("label", {className: "hw2-slider"}, el("span", {text: label}), input, output),
            set(v) { input.value = v; output.textContent = String(v); }};
  }

  let uniqueId = 0;
  const nextId = prefix => `hw2-${prefix}-${++uniqueId}`;
  const minus = number => String(number).replace("-", "\u2212");

  // ------------------------------------------------------------------ chapter 1: the matrix M

  function matrixPanel(root) {
    const size = {H: 4, W: 5, M: 2, N: 3};
    for (const key of Object.keys(size)) if (root.dataset[key.toLowerCase()]) size[key] = Number(root.dataset[key.toLowerCase()]);
    let selected = null, layout = null;
    const sliders = {};
    const names = {H: "H (image rows)", W: "W (image columns)", M: "M (kernel rows)", N: "N (kernel columns)"};
    for (const key of ["H", "W", "M", "N"])
      sliders[key] = slider(nextId(key), names[key], size[key], 1, 8, value => { size[key] = value; selected = null; redraw(); });
    const summary = el("p", {className: "hw2-summary", "aria-live": "polite"});
    const canvas = el("canvas", {className: "hw2-matrix", role: "img"});
    const scroll = el("div", {className: "hw2-scroll"}, canvas);
    const detail = el("div", {className: "hw2-detail", "aria-live": "polite"});
    const grids = {x: el("canvas"), K: el("canvas"), z: el("canvas")};
    const figure = (canvasNode, caption) => el("figure", {className: "hw2-mini"}, canvasNode, el("figcaption", {text: caption}));
    root.append(
      el("div", {className: "hw2-controls hw2-controls-4"}, Object.values(sliders).map(s => s.node)),
      summary, scroll,
      el("p", {className: "hw2-hint", text: "Point at (or tap) an entry of M to see where it comes from; the arrow keys move along M too."}),
      el("div", {className: "hw2-entry"}, detail,
         el("div", {className: "hw2-minis"}, figure(grids.x, "image x (H \u00d7 W)"), figure(grids.K, "kernel K"),
            figure(grids.z, "output z (H\u2032 \u00d7 W\u2032)"))));

    function redraw() {
      const {H, W, M, N} = size, outH = H - M + 1, outW = W - N + 1;
      if (outH < 1 || outW < 1) {
        summary.textContent = `A ${M}\u00d7${N} kernel does not fit a ${H}\u00d7${W} image: H\u2032 = H \u2212 M + 1 = ${outH}, ` +
          `W\u2032 = W \u2212 N + 1 = ${outW}. Make the kernel smaller or the image larger.`;
        summary.classList.add("hw2-warning");
        canvas.hidden = true;
        layout = null;
        showEntry(null);
        return;
      }
      summary.classList.remove("hw2-warning");
      canvas.hidden = false;
      if (!selected) {  // start with an entry explained: output pixel (1, 1) reading K[1, 1] (where they exist)
        const a = Math.min(1, outH - 1), b = Math.min(1, outW - 1);
        selected = {row: a * outW + b, col: (a + Math.min(1, M - 1)) * W + b + Math.min(1, N - 1)};
      }
      summary.textContent = `M is H\u2032W\u2032 \u00d7 HW = ${outH * outW} \u00d7 ${H * W}: ${outH} \u00d7 ${H} blocks ` +
        `(red lines) of W\u2032 \u00d7 W = ${outW} \u00d7 ${W}, ${M} non-zero blocks per block row; ` +
        `the kernel holds 1, 2, \u2026, ${M * N} so every entry has its own colour.`;
      drawMatrix();
      showEntry(selected);
    }

    function drawMatrix() {
      const {H, W, M, N} = size, outH = H - M + 1, outW = W - N + 1, rows = outH * outW, columns = H * W;
      const margin = 30, available = Math.max(120, scroll.clientWidth - margin - 4);
      const cell = Math.max(7, Math.min(30, Math.floor(available / columns)));
      layout = {margin, cell, rows, columns};
      const context = sizeCanvas(canvas, margin + columns * cell + 1, margin + rows * cell + 1);
      canvas.setAttribute("aria-label", `the ${rows} by ${columns} matrix M`);
      context.font = "11px system-ui, sans-serif";
      context.fillStyle = "#333";
      context.textAlign = "left";
      context.textBaseline = "bottom";
      context.fillText("i \u2193  j \u2192", 0, 11);  // rows i = a W' + b, columns j = c W + d
      context.textAlign = "center";
      for (let c = 0; c < H; c++) context.fillText(String(c * W), margin + (c * W + 0.5) * cell, margin - 4);
      context.textAlign = "right";
      context.textBaseline = "middle";
      for (let a = 0; a < outH; a++) context.fillText(String(a * outW), margin - 4, margin + (a * outW + 0.5) * cell);
      const labelled = cell >= 22;
      for (let i = 0; i < rows; i++)
        for (let j = 0; j < columns; j++) {
          const {kernel} = L.matrix.entry(i, j, H, W, M, N);
          const x = margin + j * cell, y = margin + i * cell;
          if (kernel) {
            const value = kernel[0] * N + kernel[1] + 1;
            const [r, g, b] = VIRIDIS(M * N > 1 ? (value - 1) / (M * N - 1) : 0.5);
            context.fillStyle = `rgb(${r},${g},${b})`;
            context.fillRect(x, y, cell, cell);
            if (labelled) {
              context.fillStyle = value - 1 > 0.55 * (M * N - 1) ? "#000" : "#fff";
              context.textAlign = "center";
              context.font = "10px system-ui, sans-serif";
              context.fillText(`k${kernel[0]}${kernel[1]}`, x + cell / 2, y + cell / 2 + 0.5);
            }
          }
        }
      context.strokeStyle = "#e3e3e3";
      context.lineWidth = 1;
      context.beginPath();
      for (let i = 0; i <= rows; i++) { context.moveTo(margin, margin + i * cell + 0.5); context.lineTo(margin + columns * cell, margin + i * cell + 0.5); }
      for (let j = 0; j <= columns; j++) { context.moveTo(margin + j * cell + 0.5, margin); context.lineTo(margin + j * cell + 0.5, margin + rows * cell); }
      context.stroke();
      context.strokeStyle = "crimson";
      context.lineWidth = 1.5;
      context.beginPath();
      for (let i = 0; i <= rows; i += outW) { context.moveTo(margin, margin + i * cell + 0.5); context.lineTo(margin + columns * cell, margin + i * cell + 0.5); }
      for (let j = 0; j <= columns; j += W) { context.moveTo(margin + j * cell + 0.5, margin); context.lineTo(margin + j * cell + 0.5, margin + rows * cell); }
      context.stroke();
      if (selected) {
        context.strokeStyle = "#ff7f0e";
        context.lineWidth = 3;
        context.strokeRect(margin + selected.col * cell + 1, margin + selected.row * cell + 1, cell - 1, cell - 1);
      }
    }

    /** The text of an entry's story: where M[row, col] comes from (kernel_index_at, told in full). */
    function entryStory(row, col) {
      const {H, W, M, N} = size, outW = W - N + 1;
      const e = L.matrix.entry(row, col, H, W, M, N);
      const lines = [
        `M[${row}, ${col}]`,
        `row i = a\u00b7W\u2032 + b = ${e.a}\u00b7${outW} + ${e.b}: output pixel (a, b) = (${e.a}, ${e.b})`,
        `column j = c\u00b7W + d = ${e.c}\u00b7${W} + ${e.d}: input pixel (c, d) = (${e.c}, ${e.d})`,
      ];
      const offset = `(c \u2212 a, d \u2212 b) = (${minus(e.m)}, ${minus(e.n)})`;
      if (e.kernel) {
        lines.push(`${offset} lies in the ${M}\u00d7${N} kernel: M[${row}, ${col}] = K[${e.m}, ${e.n}] = ${e.m * N + e.n + 1}`);
      } else {
        const why = e.m < 0 ? `input row c = ${e.c} is above the window of output row a = ${e.a} (rows ${e.a}\u2026${e.a + M - 1})`
          : e.m >= M ? `input row c = ${e.c} is below the window of output row a = ${e.a} (rows ${e.a}\u2026${e.a + M - 1})`
          : e.n < 0 ? `input column d = ${e.d} is left of the window of output column b = ${e.b} (columns ${e.b}\u2026${e.b + N - 1})`
          : `input column d = ${e.d} is right of the window of output column b = ${e.b} (columns ${e.b}\u2026${e.b + N - 1})`;
        lines.push(`${offset} lies outside the ${M}\u00d7${N} kernel: ${why}, so M[${row}, ${col}] = 0`);
      }
      return {entry: e, lines};
    }

    function showEntry(at) {
      detail.replaceChildren();
      for (const key of Object.keys(grids)) grids[key].hidden = !at;
      if (!at || !layout) {
        detail.dataset.row = detail.dataset.col = "";
        return;
      }
      const {entry, lines} = entryStory(at.row, at.col);
      detail.dataset.row = at.row;
      detail.dataset.col = at.col;
      detail.dataset.kernel = entry.kernel ? entry.kernel.join(",") : "none";
      detail.append(el("strong", {text: lines[0]}), ...lines.slice(1).map(line => el("div", {text: line})));
      drawMinis(entry);
    }

    function drawMinis(e) {
      const {H, W, M, N} = size, outH = H - M + 1, outW = W - N + 1, cell = 20;
      const grid = (canvas, rows, columns, fill) => {
        const context = sizeCanvas(canvas, columns * cell + 1, rows * cell + 1);
        for (let r = 0; r < rows; r++)
          for (let c = 0; c < columns; c++) {
            context.fillStyle = fill(r, c) || "#fff";
            context.fillRect(c * cell, r * cell, cell, cell);
          }
        context.strokeStyle = "#999";
        context.lineWidth = 1;
        for (let r = 0; r <= rows; r++) { context.beginPath(); context.moveTo(0, r * cell + 0.5); context.lineTo(columns * cell, r * cell + 0.5); context.stroke(); }
        for (let c = 0; c <= columns; c++) { context.beginPath(); context.moveTo(c * cell + 0.5, 0); context.lineTo(c * cell + 0.5, rows * cell); context.stroke(); }
        return context;
      };
      const inWindow = (r, c) => r >= e.a && r < e.a + M && c >= e.b && c < e.b + N;
      grid(grids.x, H, W, (r, c) => (r === e.c && c === e.d ? "#ff7f0e" : inWindow(r, c) ? "#cfe3f5" : null));
      const kernelContext = grid(grids.K, M, N, (r, c) => {
        if (e.kernel && r === e.m && c === e.n) return "#ff7f0e";
        const [red, green, blue] = VIRIDIS(M * N > 1 ? (r * N + c) / (M * N - 1) : 0.5);
        return `rgba(${red},${green},${blue},0.35)`;
      });
      kernelContext.font = "11px system-ui, sans-serif";
      kernelContext.fillStyle = "#000";
      kernelContext.textAlign = "center";
      kernelContext.textBaseline = "middle";
      for (let r = 0; r < M; r++) for (let c = 0; c < N; c++) kernelContext.fillText(String(r * N + c + 1), (c + 0.5) * cell, (r + 0.5) * cell + 0.5);
      grid(grids.z, outH, outW, (r, c) => (r === e.a && c === e.b ? "#ff7f0e" : null));
    }

    function pick(event) {
      if (!layout) return;
      const box = canvas.getBoundingClientRect();
      const col = Math.floor((event.clientX - box.left - layout.margin) / layout.cell);
      const row = Math.floor((event.clientY - box.top - layout.margin) / layout.cell);
      if (row < 0 || col < 0 || row >= layout.rows || col >= layout.columns) return;
      if (selected && selected.row === row && selected.col === col) return;
      selected = {row, col};
      drawMatrix();
      showEntry(selected);
    }
    canvas.addEventListener("pointermove", pick);
    canvas.addEventListener("pointerdown", pick);
    canvas.tabIndex = 0;  // the arrow keys walk through M, for readers without a pointer
    canvas.addEventListener("keydown", event => {
      const step = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]}[event.key];
      if (!step || !layout) return;
      event.preventDefault();
      const at = selected || {row: 0, col: 0};
      selected = {row: Math.min(layout.rows - 1, Math.max(0, at.row + (selected ? step[0] : 0))),
                  col: Math.min(layout.columns - 1, Math.max(0, at.col + (selected ? step[1] : 0)))};
      drawMatrix();
      showEntry(selected);
    });
    new ResizeObserver(debounce(() => { if (layout) drawMatrix(); }, 100)).observe(scroll);
    redraw();
    return {
      set(values) { Object.assign(size, values); for (const key of Object.keys(sliders)) sliders[key].set(size[key]); selected = null; redraw(); },
      /** Where the centre of entry (row, col) is on the screen (for tests and tours). */
      cellCentre(row, col) {
        const box = canvas.getBoundingClientRect();
        return {x: box.left + layout.margin + (col + 0.5) * layout.cell, y: box.top + layout.margin + (row + 0.5) * layout.cell};
      },
      story: (row, col) => entryStory(row, col).lines,
    };
  }

  // ------------------------------------------------------------------ chapter 2: draw a character

  function drawPanel(root) {
    const cnn = L.model("cnn"), meta = cnn.meta, stats = meta.drawing;
    const classes = meta.classes, testImages = L.cnn.testImages(cnn);
    let strokes = [], shownImage = null, pending = false, state = null;
    const pad = el("canvas", {className: "hw2-pad", "aria-label": "drawing area: draw one character with the mouse, a pen or a finger"});
    const seen = el("canvas", {className: "hw2-seen", "aria-label": "the 28 by 28 image the network sees"});
    const number = el("input", {type: "number", min: 0, max: testImages.length - 1, value: 0, "aria-label": "test image number"});
    const status = el("p", {className: "hw2-status", "aria-live": "polite"});
    const bars = el("div", {className: "hw2-bars"});
    const conv1 = el("div", {className: "hw2-maps hw2-maps-8"}), conv2 = el("div", {className: "hw2-maps hw2-maps-16"});
    const conv1Bar = el("div"), conv2Bar = el("div");
    const barRows = classes.characters.map((character, k) => {
      const fill = el("span", {className: "hw2-bar-fill"}), value = el("span", {className: "hw2-bar-value"});
      const row = el("div", {className: "hw2-bar"},
        el("span", {className: "hw2-bar-label"}, el("span", {className: "hw2-kana", lang: "ja", text: character}),
           el("span", {className: "hw2-romaji", text: classes.romaji[k]})),
        el("span", {className: "hw2-bar-track"}, fill), value);
      bars.append(row);
      return {row, fill, value};
    });
    const mapCanvases = (container, count) => Array.from({length: count}, (_, k) => {
      const canvas = el("canvas", {"aria-label": `channel ${k}`});
      container.append(el("figure", {className: "hw2-map"}, canvas, el("figcaption", {text: String(k)})));
      return canvas;
    });
    const conv1Maps = mapCanvases(conv1, 8), conv2Maps = mapCanvases(conv2, 16);
    const percent = share => (100 * share).toFixed(1).replace(/\.0$/, "");
    root.append(
      el("div", {className: "hw2-draw"},
        el("div", {className: "hw2-draw-input"},
          pad,
          el("div", {className: "hw2-buttons"},
            el("button", {type: "button", onclick: clear, text: "Clear"}),
            el("span", {className: "hw2-test-picker"}, el("span", {text: "test image"}), number,
               el("button", {type: "button", onclick: () => loadTestImage(Number(number.value)), text: "Load"}))),
          el("p", {className: "hw2-hint", text: "Draw in the box with a mouse, pen or finger; a new stroke over a test image starts a new drawing."}),
          el("div", {className: "hw2-seen-box"}, seen, el("span", {text: "what the network sees: 28 \u00d7 28, values as the data loader scales them"}))),
        el("div", {className: "hw2-draw-output"}, status, bars)),
      el("h4", {text: "conv1: the 8 maps before the ReLU (one colour scale: blue negative, white 0, red positive)"}), conv1, conv1Bar,
      el("h4", {text: "conv2: the 16 maps after the ReLU"}), conv2, conv2Bar,
      el("p", {className: "hw2-note", text:
        `How a drawing is prepared, as KMNIST's images were made: the ink's bounding box is scaled so that its longer ` +
        `side fills the 28-pixel frame, keeping its proportions (true of ${percent(stats.full_frame_share)}% of the ` +
        `${stats.images.toLocaleString("en")} images of the ${meta.variant} data), and centred (their median box centre is ` +
        `pixel (${stats.median_box_centre.join(", ")})); the strokes are redrawn ${stats.stroke_width} px wide with soft ` +
        `edges, the pen width at which a drawn line has the images' median stroke width (${stats.median_stroke_width.toFixed(2)} px, ` +
        `measured as 2 \u00d7 ink / edge length); values are bytes / 256 like the training data. ` +
        `The network is chapter 2's best stored CNN (${meta.run}, dev accuracy ${meta.dev_accuracy.toFixed(3)}).`}));

    // Drawing: pointer events cover the mouse, pens and fingers.
    pad.addEventListener("pointerdown", event => {
      event.preventDefault();
      pad.setPointerCapture(event.pointerId);
      if (shownImage !== null) { shownImage = null; strokes = []; }
      strokes.push([point(event)]);
      schedule();
    });
    pad.addEventListener("pointermove", event => {
      if (!pad.hasPointerCapture(event.pointerId) || !strokes.length) return;
      for (const e of event.getCoalescedEvents ? event.getCoalescedEvents() : [event]) strokes[strokes.length - 1].push(point(e));
      schedule();
    });
    const end = event => { if (pad.hasPointerCapture(event.pointerId)) pad.releasePointerCapture(event.pointerId); schedule(); };
    pad.addEventListener("pointerup", end);
    pad.addEventListener("pointercancel", end);
    function point(event) {
      const box = pad.getBoundingClientRect();
      return [event.clientX - box.left, event.clientY - box.top];
    }
    function schedule() {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => { pending = false; update(); });
    }

    function padSize() {
      return Math.max(160, Math.min(280, root.clientWidth - 8));
    }
    function drawPad() {
      const side = padSize(), context = sizeCanvas(pad, side, side);
      context.fillStyle = "#fff";
      context.fillRect(0, 0, side, side);
      if (shownImage !== null) {
        const image = testImages[shownImage], cell = side / 28;
        for (let i = 0; i < 784; i++) {
          const [v] = GRAY_R(image[i]);
          context.fillStyle = `rgb(${v},${v},${v})`;
          context.fillRect((i % 28) * cell, Math.floor(i / 28) * cell, cell + 0.5, cell + 0.5);
        }
        return;
      }
      context.strokeStyle = "#111";
      context.lineCap = context.lineJoin = "round";
      context.lineWidth = side / 22;
      for (const stroke of strokes) {
        context.beginPath();
        context.moveTo(stroke[0][0], stroke[0][1]);
        for (const [x, y] of stroke.slice(1)) context.lineTo(x, y);
        if (stroke.length === 1) context.lineTo(stroke[0][0] + 0.01, stroke[0][1]);  // a dot: a round cap
        context.stroke();
      }
      if (!strokes.length) {
        context.fillStyle = "#999";
        context.font = "15px system-ui, sans-serif";
        context.textAlign = "center";
        context.fillText("draw a character here", side / 2, side / 2);
      }
    }

    function update() {
      drawPad();
      const pixels = shownImage !== null ? testImages[shownImage]
        : L.cnn.rasteriseStrokes(strokes, {strokeWidth: stats.stroke_width}).pixels;
      paintMap(seen, pixels, 28, 28, GRAY_R);
      const empty = shownImage === null && strokes.length === 0;
      state = empty ? null : L.cnn.forward(cnn, pixels);
      showResult(pixels);
    }

    function showResult() {
      if (!state) {
        status.textContent = "Draw one of the ten characters below in the box, or load a test image.";
        barRows.forEach(({row, fill, value}) => { fill.style.width = "0"; value.textContent = ""; row.classList.remove("hw2-top", "hw2-true"); });
        for (const canvas of [...conv1Maps, ...conv2Maps]) paintMap(canvas, [0], 1, 1, () => [255, 255, 255]);
        conv1Bar.replaceChildren();
        conv2Bar.replaceChildren();
        root.dataset.predicted = "";
        return;
      }
      const predicted = L.argmax(state.probabilities);
      const label = shownImage !== null ? meta.images.labels[shownImage] : null;
      const name = k => `${classes.characters[k]} (${classes.romaji[k]})`;
      status.textContent = `Prediction: ${name(predicted)}, ${(100 * state.probabilities[predicted]).toFixed(1)}%` +
        (label === null ? "" : ` \u2014 test image ${shownImage}, labelled ${name(label)} (\u2713)`);
      root.dataset.predicted = String(predicted);
      barRows.forEach(({row, fill, value}, k) => {
        fill.style.width = (100 * state.probabilities[k]).toFixed(2) + "%";
        value.textContent = (100 * state.probabilities[k]).toFixed(1) + "%";
        row.classList.toggle("hw2-top", k === predicted);
        row.classList.toggle("hw2-true", k === label);
      });
      let limit = 0;
      for (const v of state.conv1) limit = Math.max(limit, Math.abs(v));
      limit = limit || 1;
      conv1Maps.forEach((canvas, k) => paintMap(canvas, state.conv1.subarray(784 * k, 784 * (k + 1)), 28, 28, v => RDBU_R((v / limit + 1) / 2)));
      conv1Bar.replaceChildren(colourBar(RDBU_R, -limit, limit, "activation"));
      let top = 0;
      for (const v of state.conv2) top = Math.max(top, v);
      top = top || 1;
      conv2Maps.forEach((canvas, k) => paintMap(canvas, state.conv2.subarray(144 * k, 144 * (k + 1)), 12, 12, v => REDS(v / top)));
      conv2Bar.replaceChildren(colourBar(REDS, 0, top, "activation"));
    }

    function clear() {
      strokes = [];
      shownImage = null;
      update();
    }
    function loadTestImage(index) {
      if (!(index >= 0 && index < testImages.length)) {
        status.textContent = `Choose a test image number from 0 to ${testImages.length - 1}.`;
        return;
      }
      number.value = index;
      strokes = [];
      shownImage = index;
      update();
    }
    new ResizeObserver(debounce(drawPad, 100)).observe(root);
    // Start from a test image, so the panel shows what it does before anyone draws.
    if (root.dataset.image === "none") update();
    else loadTestImage(Number(root.dataset.image || 0));
    return {
      clear, loadTestImage, classify: pixels => L.cnn.forward(cnn, pixels),
      get state() { return state; }, get strokes() { return strokes; },
    };
  }

  // ------------------------------------------------------------------ chapter 3: translate your own Spanish

  const SHOWN = {" ": "\u2423", "<eos>": "\u2039eos\u203a"};  // a visible space, a short EOS (as the static figures)

  function translatePanel(root) {
    const names = (root.dataset.models || "translator-a translator-b").split(/\s+/);
    const models = Object.fromEntries(names.map(name => [name, L.model(name)]));
    let modelName = root.dataset.model || names[names.length - 1];
    let beamSize = Number(root.dataset.beam || 5);
    const input = el("input", {type: "text", className: "hw2-text", value: root.dataset.text || "\u00bfQui\u00e9n eres?",
                               "aria-label": "Spanish sentence", spellcheck: "false", autocomplete: "off"});
    const beam = slider(nextId("beam"), "beam size (1 = greedy)", beamSize, 1, 10, value => { beamSize = value; run(); });
    const group = nextId("model");
    const choices = el("div", {className: "hw2-models", role: "radiogroup", "aria-label": "model"}, el("span", {text: "model"}),
      names.map(name => {
        const radio = el("input", {type: "radio", name: group, value: name});
        radio.checked = name === modelName;
        radio.addEventListener("change", () => { modelName = name; run(); });
        return el("label", {}, radio, el("span", {text: models[name].meta.label}));
      }));
    const translation = el("p", {className: "hw2-translation", "aria-live": "polite"});
    const facts = el("p", {className: "hw2-facts"});
    const normalised = el("p", {className: "hw2-normalised"});
    const notes = el("ul", {className: "hw2-notes"});
    const heatmapTitle = el("h4");
    const heatmap = el("canvas", {className: "hw2-heatmap", role: "img"});
    const heatmapScroll = el("div", {className: "hw2-scroll"}, heatmap);
    const heatmapBar = el("div");
    root.append(
      el("label", {className: "hw2-text-label"}, el("span", {text: "Spanish"}), input),
      el("div", {className: "hw2-controls"}, beam.node, choices),
      translation, facts, normalised, notes, heatmapTitle, heatmapScroll, heatmapBar);

    let result = null;
    function translate(text, {model = modelName, beamSize: size = beamSize} = {}) {
      return L.text.translate(models[model], text, {beamSize: size === 1 ? null : size});
    }
    function run() {
      const started = performance.now();
      result = translate(input.value);
      const milliseconds = performance.now() - started;
      translation.textContent = result.logProb === null ? "\u2014" : result.translation || "(empty)";
      translation.lang = "en";
      facts.textContent = result.logProb === null ? "" :
        `${models[modelName].meta.label}, ${beamSize === 1 ? "greedy decoding" : `beam search, beam size ${beamSize}`}: ` +
        `log-probability ${minus(result.logProb.toFixed(3))}; decoded in ${milliseconds.toFixed(0)} ms in this page`;
      normalised.replaceChildren(el("span", {text: "normalised input: "}),
        el("code", {text: result.normalised.replace(/ /g, "\u2423") || "(empty)"}));
      notes.replaceChildren(...result.notes.map(note => el("li", {text: note})));
      root.dataset.translation = result.translation;
      drawHeatmap();
    }

    function drawHeatmap() {
      heatmapBar.replaceChildren();
      if (!result || !result.attention) {
        heatmap.hidden = true;
        heatmapTitle.textContent = result && result.logProb !== null && !models[modelName].meta.attention
          ? "Model (a) has no attention: the whole sentence reaches the decoder through its first state." : "";
        return;
      }
      heatmap.hidden = false;
      heatmapTitle.textContent = "Attention: output characters down, source characters across (darker: more attention)";
      const rows = result.targetSymbols.map(s => SHOWN[s] || s), columns = result.sourceSymbols.map(s => SHOWN[s] || s);
      const measure = sizeCanvas(heatmap, 1, 1), font = "14px ui-monospace, monospace";
      measure.font = font;
      const left = 8 + Math.max(...rows.map(symbol => measure.measureText(symbol).width)), top = 22;
      const cell = Math.max(16, Math.min(24, Math.floor((heatmapScroll.clientWidth - left - 4) / columns.length)));
      const context = sizeCanvas(heatmap, left + columns.length * cell + 1, top + rows.length * cell + 1);
      heatmap.setAttribute("aria-label", `attention of ${rows.length} output characters over ${columns.length} source characters`);
      context.font = font;
      context.fillStyle = "#222";
      context.textAlign = "center";
      context.textBaseline = "bottom";
      columns.forEach((symbol, j) => context.fillText(symbol, left + (j + 0.5) * cell, top - 3));
      context.textAlign = "right";
      context.textBaseline = "middle";
      rows.forEach((symbol, i) => context.fillText(symbol, left - 4, top + (i + 0.5) * cell));
      result.attention.forEach((row, i) => row.forEach((p, j) => {
        const [r, g, b] = GREYS(p);
        context.fillStyle = `rgb(${r},${g},${b})`;
        context.fillRect(left + j * cell, top + i * cell, cell, cell);
      }));
      context.strokeStyle = "#888";
      context.strokeRect(left + 0.5, top + 0.5, columns.length * cell, rows.length * cell);
      heatmapBar.append(colourBar(GREYS, 0, 1, "attention probability"));
    }

    const typed = debounce(run, 150);
    input.addEventListener("input", typed);
    new ResizeObserver(debounce(drawHeatmap, 100)).observe(heatmapScroll);
    run();
    return {
      translate,
      set({text, beamSize: size, model} = {}) {
        if (text !== undefined) input.value = text;
        if (size !== undefined) { beamSize = size; beam.set(size); }
        if (model !== undefined) { modelName = model; for (const radio of choices.querySelectorAll("input")) radio.checked = radio.value === model; }
        run();
        return result;
      },
      get result() { return result; },
    };
  }

  // ------------------------------------------------------------------ start

  const PANELS = {matrix: matrixPanel, draw: drawPanel, translate: translatePanel};

  function start() {
    for (const root of document.querySelectorAll(".hw2-live[data-panel]")) {
      if (root.dataset.ready) continue;
      root.replaceChildren();  // the text for readers without JavaScript (and in Jupyter)
      const make = PANELS[root.dataset.panel];
      try {
        if (!L) throw new Error("hw2live.js did not load");
        if (!make) throw new Error(`unknown live panel "${root.dataset.panel}"`);
        root.hw2live = make(root);
        root.dataset.ready = "1";
        root.dataset.readyAt = performance.now().toFixed(0);
      } catch (error) {
        root.replaceChildren(el("p", {className: "hw2-warning", text: "This live panel could not start: " + error.message}));
        root.dataset.ready = "error";
        throw error;
      }
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
