/* hw2live.js: the book's trained models, run in plain JavaScript over float32 weights.
 *
 * Loaded by the live panels of chapters 1-3 (panels.js) and by the Node unit tests
 * (tests/js). The weights come from generated scripts (_static/live/<model>.js, written by
 * hw2lib.web_export) that put {tensors, weights: base64 float32, ...} on
 * globalThis.HW2LIVE_DATA. Arithmetic is float64 over float32 weights; it agrees with torch's
 * float32 to about 1e-6.
 *
 * Mapping to the PyTorch modules (hw2lib.cnn.CNN, hw2lib.seq2seq.Seq2Seq):
 *   conv2d        nn.Conv2d (cross-correlation, weight [out, in, kh, kw], zero padding)
 *   linear        nn.Linear (weight [out, in]: y = W x + b)
 *   lstmCell      nn.LSTM, one step: gates = W_ih x + b_ih + W_hh h + b_hh, split in the order
 *                 i, f, g, o; c' = f c + i g; h' = o tanh(c'). x is always an embedding, so
 *                 W_ih x + b_ih is computed once per token (inputGates).
 *   encode        Encoder: one sentence, so no padding and no packing. Forward direction over
 *                 t = 0..S-1, backward over t = S-1..0 (weights "_reverse"); output t is
 *                 [forward_t; backward_t]; the decoder starts from [forward final; backward
 *                 final], the backward final state being the one after reading position 0.
 *   step          Decoder + BilinearAttention + generator: the generator's weight IS the
 *                 decoder's embedding (tied, exported once), logits = E a + b.
 *   greedyDecode, beamSearch   hw2lib.decoding.greedy_decode / beam_search for one sentence.
 */
(function (root, factory) {
  if (typeof module === "object" && module.exports) module.exports = factory();
  else root.HW2Live = factory();
})(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  // ------------------------------------------------------------------ weights

  function base64Bytes(text) {
    if (typeof Buffer !== "undefined") {  // Node
      const buffer = Buffer.from(text, "base64");
      return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
    }
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  /** {tensors: {name: [shape, offset]}, weights: base64 little-endian float32} -> name -> Float32Array. */
  function loadModel(data) {
    const bytes = base64Bytes(data.weights);
    const all = new Float32Array(bytes.slice().buffer);  // a copy: Float32Array needs 4-byte alignment
    const tensors = {};
    for (const [name, [shape, offset]] of Object.entries(data.tensors)) {
      const size = shape.reduce((a, b) => a * b, 1);
      tensors[name] = all.subarray(offset, offset + size);
    }
    return {meta: data, tensors};
  }

  /** The model named `name` from globalThis.HW2LIVE_DATA, decoded once. */
  const loaded = {};
  function model(name) {
    if (!loaded[name]) {
      const store = (typeof globalThis !== "undefined" ? globalThis : self).HW2LIVE_DATA || {};
      if (!store[name]) throw new Error("the model data '" + name + "' were not loaded (is _static/live/" + name + ".js missing?)");
      loaded[name] = loadModel(store[name]);
    }
    return loaded[name];
  }

  // ------------------------------------------------------------------ layers

  /** y = W x + b for W [rows, columns] (nn.Linear). `bias` may be null. */
  function linear(weight, bias, x, rows, columns) {
    const y = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let sum = bias ? bias[r] : 0;
      const base = r * columns;
      for (let k = 0; k < columns; k++) sum += weight[base + k] * x[k];
      y[r] = sum;
    }
    return y;
  }

  /** nn.Conv2d, stride 1: input [inC, h, w], weight [outC, inC, kh, kw] -> [outC, h', w'].
   * Each kernel entry adds its weight times a shifted copy of one input plane (rows and columns
   * that would read the zero padding are skipped), so the innermost loop runs along a row. */
  function conv2d(input, inC, h, w, weight, bias, outC, kh, kw, pad) {
    const oh = h + 2 * pad - kh + 1, ow = w + 2 * pad - kw + 1;
    const out = new Float64Array(outC * oh * ow);
    for (let o = 0; o < outC; o++) {
      const plane = o * oh * ow;
      out.fill(bias[o], plane, plane + oh * ow);
      for (let c = 0; c < inC; c++)
        for (let m = 0; m < kh; m++)
          for (let n = 0; n < kw; n++) {
            const weightValue = weight[((o * inC + c) * kh + m) * kw + n];
            const y0 = Math.max(0, pad - m), y1 = Math.min(oh, h + pad - m);  // input row y + m - pad inside
            const x0 = Math.max(0, pad - n), x1 = Math.min(ow, w + pad - n);
            for (let y = y0; y < y1; y++) {
              const into = plane + y * ow, from = (c * h + y + m - pad) * w + n - pad;
              for (let x = x0; x < x1; x++) out[into + x] += weightValue * input[from + x];
            }
          }
    }
    return {data: out, h: oh, w: ow};
  }

  function relu(values) {
    return values.map(v => (v > 0 ? v : 0));
  }

  /** F.max_pool2d(kernel 2, stride 2) over [channels, h, w] (odd edges dropped, as torch does). */
  function maxPool2(input, channels, h, w) {
    const oh = Math.floor(h / 2), ow = Math.floor(w / 2);
    const out = new Float64Array(channels * oh * ow);
    for (let c = 0; c < channels; c++)
      for (let y = 0; y < oh; y++)
        for (let x = 0; x < ow; x++) {
          const at = (dy, dx) => input[(c * h + 2 * y + dy) * w + 2 * x + dx];
          out[(c * oh + y) * ow + x] = Math.max(at(0, 0), at(0, 1), at(1, 0), at(1, 1));
        }
    return {data: out, h: oh, w: ow};
  }

  function logSoftmax(logits) {
    let max = -Infinity;
    for (const v of logits) if (v > max) max = v;
    let sum = 0;
    for (const v of logits) sum += Math.exp(v - max);
    const logSum = Math.log(sum) + max;
    return Array.from(logits, v => v - logSum);
  }

  const sigmoid = x => 1 / (1 + Math.exp(-x));

  // ------------------------------------------------------------------ chapter 2: the CNN

  /** hw2lib.cnn.CNN in eval mode on one 28x28 image (values as the loader scales them, /256).
   * Returns log-probabilities, probabilities, conv1's 8 maps before the ReLU (as the chapter's
   * figure) and conv2's 16 maps after it. */
  function cnnForward(cnn, pixels) {
    const t = cnn.tensors;
    const conv1 = conv2d(pixels, 1, 28, 28, t["conv1.weight"], t["conv1.bias"], 8, 5, 5, 2);      // [8, 28, 28]
    const pool1 = maxPool2(relu(conv1.data), 8, 28, 28);                                          // [8, 14, 14]
    const conv2 = conv2d(pool1.data, 8, 14, 14, t["conv2.weight"], t["conv2.bias"], 16, 3, 3, 0); // [16, 12, 12]
    const conv2Relu = relu(conv2.data);
    const pool2 = maxPool2(conv2Relu, 16, 12, 12);                                                // [16, 6, 6] -> 576, (C, H, W) order as torch.flatten
    const fc1 = relu(linear(t["fc1.weight"], t["fc1.bias"], pool2.data, 600, 576));               // dropout: identity in eval mode
    const fc2 = relu(linear(t["fc2.weight"], t["fc2.bias"], fc1, 120, 600));
    const logProbs = logSoftmax(linear(t["fc3.weight"], t["fc3.bias"], fc2, 10, 120));
    return {logProbs, probabilities: logProbs.map(Math.exp), conv1: conv1.data, conv2: conv2Relu};
  }

  function argmax(values) {
    let best = 0;
    for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;  // first of equal maxima
    return best;
  }

  /** The first `count` exported test images as Float32Arrays of 784 values (uint8 / 256). */
  function testImages(cnn) {
    const images = cnn.meta.images;
    const bytes = base64Bytes(images.pixels);
    const out = [];
    for (let i = 0; i < images.labels.length; i++)
      out.push(Float32Array.from(bytes.subarray(i * 784, (i + 1) * 784), v => v / images.scale));
    return out;
  }

  // ------------------------------------------------------------------ chapter 2: a drawing as KMNIST draws it

  /** Strokes (arrays of [x, y] points, any units) -> a 28x28 image the way KMNIST's images are made:
   * the ink's bounding box scaled so that its longer side fills the frame (aspect kept), centred,
   * strokes redrawn `strokeWidth` pixels wide; each pixel's value is the share of its
   * supersample x supersample sub-pixels within strokeWidth/2 of a stroke, stored as a byte / 256
   * like the data. hw2lib.web_export.rasterise_strokes is the same rule in numpy. */
  function rasteriseStrokes(strokes, {size = 28, strokeWidth = 2.8, supersample = 8} = {}) {
    const points = strokes.flat();
    const pixels = new Float32Array(size * size);
    if (points.length === 0) return {pixels, scale: 0};
    const xs = points.map(p => p[0]), ys = points.map(p => p[1]);
    const minX = Math.min(...xs), maxX = Math.max(...xs), minY = Math.min(...ys), maxY = Math.max(...ys);
    const side = Math.max(maxX - minX, maxY - minY);
    const scale = side > 1e-9 ? (size - strokeWidth) / side : 1;
    const cx = (minX + maxX) / 2, cy = (minY + maxY) / 2;
    const place = p => [(p[0] - cx) * scale + size / 2, (p[1] - cy) * scale + size / 2];
    const n = size * supersample, radius = strokeWidth / 2, covered = new Uint8Array(n * n);
    for (const stroke of strokes) {
      const placed = stroke.map(place);
      for (let s = 0; s < placed.length; s++) {
        const a = placed[s], b = placed[Math.min(s + 1, placed.length - 1)];
        markSegment(covered, n, supersample, a, b, radius);
      }
    }
    const share = supersample * supersample;
    for (let y = 0; y < size; y++)
      for (let x = 0; x < size; x++) {
        let count = 0;
        for (let v = 0; v < supersample; v++)
          for (let u = 0; u < supersample; u++) count += covered[(y * supersample + v) * n + x * supersample + u];
        pixels[y * size + x] = Math.round((count / share) * 255) / 256;
      }
    return {pixels, scale};
  }

  /** Mark the sub-pixels whose centres lie within `radius` of segment a-b (in output pixels). */
  function markSegment(covered, n, supersample, a, b, radius) {
    const [ax, ay] = a, [bx, by] = b, dx = bx - ax, dy = by - ay, length2 = dx * dx + dy * dy;
    const lo = v => Math.max(0, Math.floor((v - radius) * supersample));
    const hi = v => Math.min(n - 1, Math.ceil((v + radius) * supersample));
    for (let v = lo(Math.min(ay, by)); v <= hi(Math.max(ay, by)); v++) {
      const py = (v + 0.5) / supersample;
      for (let u = lo(Math.min(ax, bx)); u <= hi(Math.max(ax, bx)); u++) {
        const px = (u + 0.5) / supersample;
        const t = length2 > 0 ? Math.min(1, Math.max(0, ((px - ax) * dx + (py - ay) * dy) / length2)) : 0;
        const ex = px - (ax + t * dx), ey = py - (ay + t * dy);
        if (ex * ex + ey * ey <= radius * radius) covered[v * n + u] = 1;
      }
    }
  }

  // ------------------------------------------------------------------ chapter 3: the translator

  /** One nn.LSTM step for one direction/layer: returns the new [h, c]. `inputPart` is
   * W_ih x + b_ih (inputGates); `prefix` and `suffix` name the weights, e.g. "encoder.lstm" and
   * "_l0" or "_l0_reverse". */
  function lstmCell(t, prefix, suffix, inputPart, h, c, hidden) {
    const recurrent = linear(t[prefix + ".weight_hh" + suffix], t[prefix + ".bias_hh" + suffix], h, 4 * hidden, hidden);
    const newH = new Float64Array(hidden), newC = new Float64Array(hidden);
    for (let k = 0; k < hidden; k++) {
      const i = sigmoid(inputPart[k] + recurrent[k]);                              // input gate
      const f = sigmoid(inputPart[hidden + k] + recurrent[hidden + k]);            // forget gate
      const g = Math.tanh(inputPart[2 * hidden + k] + recurrent[2 * hidden + k]);  // candidate
      const o = sigmoid(inputPart[3 * hidden + k] + recurrent[3 * hidden + k]);    // output gate
      newC[k] = f * c[k] + i * g;
      newH[k] = o * Math.tanh(newC[k]);
    }
    return [newH, newC];
  }

  /** W_ih x + b_ih of an LSTM whose input x is the embedding (`table`) of `token`: it depends on
   * the token alone, so it is computed once per token and kept. */
  function inputGates(translator, prefix, suffix, table, token, hidden) {
    const cache = translator.inputGates || (translator.inputGates = new Map()), key = prefix + suffix + " " + token;
    if (!cache.has(key)) {
      const t = translator.tensors, size = translator.meta.hidden_size;
      cache.set(key, linear(t[prefix + ".weight_ih" + suffix], t[prefix + ".bias_ih" + suffix],
                            embed(t[table], token, size), 4 * hidden, size));
    }
    return cache.get(key);
  }

  function embed(table, token, size) {
    return table.subarray(token * size, (token + 1) * size);
  }

  /** Encoder on one sentence of ids (no padding): outputs [S][H] and the decoder's start [h, c]. */
  function encode(translator, ids) {
    const t = translator.tensors, H = translator.meta.hidden_size, half = H / 2;
    const forward = [], backward = new Array(ids.length);
    let state = [new Float64Array(half), new Float64Array(half)];
    for (let s = 0; s < ids.length; s++) {
      const input = inputGates(translator, "encoder.lstm", "_l0", "encoder.embedding.weight", ids[s], half);
      state = lstmCell(t, "encoder.lstm", "_l0", input, state[0], state[1], half);
      forward.push(state[0]);
    }
    const forwardFinal = state;
    state = [new Float64Array(half), new Float64Array(half)];
    for (let s = ids.length - 1; s >= 0; s--) {
      const input = inputGates(translator, "encoder.lstm", "_l0_reverse", "encoder.embedding.weight", ids[s], half);
      state = lstmCell(t, "encoder.lstm", "_l0_reverse", input, state[0], state[1], half);
      backward[s] = state[0];
    }
    const join = (a, b) => { const v = new Float64Array(H); v.set(a); v.set(b, half); return v; };
    const outputs = forward.map((f, s) => join(f, backward[s]));
    return {outputs, state: [join(forwardFinal[0], state[0]), join(forwardFinal[1], state[1])]};
  }

  /** One decoding step (Seq2Seq.step): previous token and state -> log-probabilities over the
   * target vocabulary, the new state, and the attention over the source (null without attention). */
  function step(translator, token, state, encoded) {
    const t = translator.tensors, H = translator.meta.hidden_size, V = translator.meta.target_symbols.length;
    const input = inputGates(translator, "decoder.lstm", "_l0", "decoder.embedding.weight", token, H);
    const [h, c] = lstmCell(t, "decoder.lstm", "_l0", input, state[0], state[1], H);
    let output = h, attention = null;
    if (translator.meta.attention) {
      // BilinearAttention: s_i = (W_in q) . h_i, p = softmax(s), c = sum_i p_i h_i, a = tanh(W_out [q; c] + b)
      const projected = linear(t["decoder.attention.linear_in.weight"], null, h, H, H);
      const scores = encoded.outputs.map(source => source.reduce((sum, v, k) => sum + v * projected[k], 0));
      attention = logSoftmax(scores).map(Math.exp);
      const joined = new Float64Array(2 * H);
      joined.set(h);
      encoded.outputs.forEach((source, i) => { for (let k = 0; k < H; k++) joined[H + k] += attention[i] * source[k]; });
      output = linear(t["decoder.attention.linear_out.weight"], t["decoder.attention.linear_out.bias"], joined, H, 2 * H).map(Math.tanh);
    }
    // The generator: its weight is the decoder's embedding (tied in Seq2Seq.__init__).
    const logits = linear(t["decoder.embedding.weight"], t["generator.bias"], output, V, H);
    return {logProbs: logSoftmax(logits), state: [h, c], attention};
  }

  /** hw2lib.decoding.greedy_decode for one sentence: from SOS take the most likely character,
   * stop at EOS or after maxLength steps. Tokens exclude SOS and include the EOS. */
  function greedyDecode(translator, ids, {maxLength = 50} = {}) {
    const {EOS, SOS} = specials(translator);
    const encoded = encode(translator, ids);
    let state = encoded.state, previous = SOS, logProb = 0;
    const tokens = [], attention = [];
    for (let s = 0; s < maxLength; s++) {
      const out = step(translator, previous, state, encoded);
      const best = argmax(out.logProbs);
      tokens.push(best);
      logProb += out.logProbs[best];
      if (out.attention) attention.push(out.attention);
      state = out.state;
      previous = best;
      if (best === EOS) break;
    }
    return {tokens, logProb, attention: attention.length ? attention : null};
  }

  /** hw2lib.decoding.beam_search for one sentence, with the same rules: the beam holds beamSize
   * entries, finished or not; a finished entry is carried unchanged, an unfinished one is
   * extended by every character; the best beamSize candidates by total log-probability form the
   * next beam (ties: the lower entry, then the lower character id, first). Without length
   * normalisation the search stops when the best entry is finished and returns it; with alpha > 0
   * it runs until all entries are finished (or maxLength) and returns the entry with the highest
   * logProb / length^alpha (length counts the EOS). */
  function beamSearch(translator, ids, beamSize, {maxLength = 50, lengthNormalisation = 0} = {}) {
    if (!(beamSize >= 1)) throw new Error("beam size must be at least 1, got " + beamSize);
    const {EOS, SOS, PAD} = specials(translator);
    const V = translator.meta.target_symbols.length;
    const encoded = encode(translator, ids);
    let beam = [{tokens: [], score: 0, finished: false, length: 0, state: encoded.state, attention: []}];
    for (let i = 1; i < beamSize; i++) beam.push({tokens: [], score: -Infinity, finished: true, length: 0, state: null, attention: []});
    for (let s = 0; s < maxLength; s++) {
      const candidates = [];
      beam.forEach((entry, parent) => {
        if (entry.finished) {  // its only continuation: itself (PAD), score unchanged
          candidates.push({parent, token: PAD, score: entry.score, out: null});
          return;
        }
        const out = step(translator, entry.tokens.length ? entry.tokens[entry.tokens.length - 1] : SOS, entry.state, encoded);
        for (let v = 0; v < V; v++) candidates.push({parent, token: v, score: entry.score + out.logProbs[v], out});
      });
      candidates.sort((a, b) => b.score - a.score || a.parent - b.parent || a.token - b.token);
      beam = candidates.slice(0, beamSize).map(({parent, token, score, out}) => {
        const from = beam[parent];
        return {tokens: from.tokens.concat([token]), score, length: from.length + (from.finished ? 0 : 1),
                finished: from.finished || token === EOS || score === -Infinity,
                state: out ? out.state : from.state,
                attention: out && out.attention ? from.attention.concat([out.attention]) : from.attention};
      });
      while (beam.length < beamSize) beam.push({tokens: [], score: -Infinity, finished: true, length: 0, state: null, attention: []});
      const done = lengthNormalisation > 0 ? beam.every(e => e.finished) : beam[0].finished;
      if (done || s === maxLength - 1) {
        const chosen = lengthNormalisation > 0
          ? beam[argmax(beam.map(e => e.score / Math.pow(Math.max(e.length, 1), lengthNormalisation)))]
          : beam[0];
        const tokens = cutAtEos(chosen.tokens, EOS);
        return {tokens, logProb: chosen.score, attention: chosen.attention.length ? chosen.attention.slice(0, tokens.length) : null};
      }
    }
    throw new Error("maxLength must be at least 1, got " + maxLength);
  }

  function cutAtEos(tokens, EOS) {
    const end = tokens.indexOf(EOS);
    return end < 0 ? tokens.slice() : tokens.slice(0, end + 1);
  }

  function specials(translator) {
    const s = translator.meta.specials;
    return {PAD: s["<pad>"], SOS: s["<sos>"], EOS: s["<eos>"], UNK: s["<unk>"]};
  }

  // ------------------------------------------------------------------ chapter 3: text in and out

  // Python's str.isspace() (and so str.strip()): categories Zs plus bidi classes WS, B, S.
  const PY_SPACE = /[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;
  const PY_STRIP = new RegExp("^" + PY_SPACE.source + "+|" + PY_SPACE.source + "+$", "g");

  /** hw2lib.chardata.normalise: lower-case ASCII, accents stripped, a space before . ! ?, every
   * other run of characters outside [a-z.!?] turned into one space. */
  function normalise(text) {
    const decomposed = text.toLowerCase().replace(PY_STRIP, "").normalize("NFD");
    const ascii = Array.from(decomposed).filter(ch => !/\p{Mn}/u.test(ch)).join("");
    return ascii.replace(/([.!?])/g, " $1").replace(/[^a-z.!?]+/g, " ");
  }

  const byCodePoint = (a, b) => a.codePointAt(0) - b.codePointAt(0);

  /** hw2lib.translate.translate: normalise like the course's data, map unseen characters to UNK,
   * decode greedily (beamSize 1 or null) or with beam search; notes say what was unusual. */
  function translate(translator, text, {beamSize = null} = {}) {
    const meta = translator.meta, {UNK, EOS} = specials(translator);
    const normalised = normalise(text);
    const removed = [...new Set(Array.from(text.toLowerCase()))]
      .filter(ch => !PY_SPACE.test(ch) && !normalise(ch).replace(PY_STRIP, "")).sort(byCodePoint);
    const notes = [];
    if (removed.length)
      notes.push(`the course's normalisation removes ${removed.length} distinct character(s): ` +
                 removed.slice(0, 20).join("") + (removed.length > 20 ? "..." : ""));
    const index = new Map(meta.source_symbols.map((symbol, id) => [symbol, id]));
    const ids = Array.from(normalised, ch => (index.has(ch) ? index.get(ch) : UNK));
    const sourceSymbols = ids.map(id => (id === UNK ? "\ufffd" : meta.source_symbols[id]));
    const result = {text, normalised, sourceSymbols, translation: "", targetSymbols: [], attention: null, logProb: null, notes};
    if (!normalised.trim()) {
      notes.push("nothing to translate: no letters or . ! ? are left after normalisation");
      return result;
    }
    const unknown = [...new Set(Array.from(normalised).filter((ch, i) => ids[i] === UNK))].sort(byCodePoint);
    if (unknown.length) notes.push(`characters never seen in training became <unk>: ${unknown.join("")}`);
    if (normalised.length > meta.long_input)
      notes.push(`the input is ${normalised.length} characters long; training sentences were under 20 and ` +
                 `the output stops after ${meta.max_steps} characters, so expect a poor, cut-off translation`);
    const hypothesis = beamSize === null ? greedyDecode(translator, ids, {maxLength: meta.max_steps})
      : beamSearch(translator, ids, beamSize, {maxLength: meta.max_steps});
    if (hypothesis.tokens[hypothesis.tokens.length - 1] !== EOS)
      notes.push(`the decoder reached the ${meta.max_steps}-character limit without ending the sentence`);
    result.targetSymbols = hypothesis.tokens.map(id => meta.target_symbols[id]);  // the specials are "<eos>" etc.
    result.translation = decodeTokens(translator, hypothesis.tokens);
    result.attention = hypothesis.attention;
    result.logProb = hypothesis.logProb;
    return result;
  }

  /** Vocabulary.decode: text of ids, stopping at EOS, skipping PAD and SOS, UNK shown as U+FFFD. */
  function decodeTokens(translator, tokens) {
    const {PAD, SOS, EOS, UNK} = specials(translator);
    let text = "";
    for (const id of tokens) {
      if (id === EOS) break;
      if (id === PAD || id === SOS) continue;
      text += id === UNK ? "\ufffd" : translator.meta.target_symbols[id];
    }
    return text;
  }

  // ------------------------------------------------------------------ chapter 1: the matrix M

  /** hw2lib.convolution.kernel_index_at: with row = a W' + b and col = c W + d, M[row, col] holds
   * K[c - a, d - b] when 0 <= c-a < M and 0 <= d-b < N, else 0. Returns the whole story. */
  function matrixEntry(row, col, H, W, M, N) {
    const outW = W - N + 1, outH = H - M + 1;
    if (outH < 1 || outW < 1) throw new Error(`a ${M}x${N} kernel does not fit a ${H}x${W} image`);
    if (row < 0 || col < 0 || row >= outH * outW || col >= H * W) throw new Error(`(${row}, ${col}) is outside M`);
    const a = Math.floor(row / outW), b = row % outW, c = Math.floor(col / W), d = col % W;
    const m = c - a, n = d - b;
    const inside = m >= 0 && m < M && n >= 0 && n < N;
    return {a, b, c, d, m, n, kernel: inside ? [m, n] : null};
  }

  return {
    loadModel, model, linear, conv2d, maxPool2, logSoftmax, argmax,
    cnn: {forward: cnnForward, testImages, rasteriseStrokes},
    seq2seq: {encode, step, greedyDecode, beamSearch, decodeTokens},
    text: {normalise, translate},
    matrix: {entry: matrixEntry},
  };
});
