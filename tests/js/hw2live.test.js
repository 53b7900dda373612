// The live panels' forward passes and decoders against torch's answers (hw2lib.web_export's golden
// file), without a browser: `node --test tests/js` with HW2LIVE_DIR naming a folder that holds the
// exported model scripts and golden.json. tests/test_live_js.py makes that folder and runs this.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const HW2Live = require("../../web/live/hw2live.js");

const folder = process.env.HW2LIVE_DIR;
const ready = folder && fs.existsSync(path.join(folder, "golden.json"));
const skip = ready ? false : "HW2LIVE_DIR is not set: run `python -m pytest tests/test_live_js.py`, which exports the models first";
const golden = ready ? JSON.parse(fs.readFileSync(path.join(folder, "golden.json"), "utf8")) : null;
if (ready) for (const name of ["cnn", "translator-a", "translator-b"]) require(path.join(path.resolve(folder), name + ".js"));

const maxDifference = (a, b) => {
  assert.equal(a.length, b.length, "lengths differ");
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
};

test("the CNN gives torch's class and log-probabilities on every golden test image", {skip}, () => {
  const cnn = HW2Live.model("cnn"), g = golden.cnn;
  const bytes = Buffer.from(g.pixels, "base64");
  let worst = 0;
  g.labels.forEach((_, i) => {
    const image = Float32Array.from(bytes.subarray(i * 784, (i + 1) * 784), v => v / 256);
    const out = HW2Live.cnn.forward(cnn, image);
    assert.equal(HW2Live.argmax(out.logProbs), g.predicted[i], `image ${i}`);
    worst = Math.max(worst, maxDifference(out.probabilities, g.log_probs[i].map(Math.exp)));
  });
  assert.ok(worst < 1e-5, `largest probability difference ${worst}`);
  assert.ok(g.labels.length >= 100);
});

test("conv1 maps before the ReLU and conv2 maps after it match torch's", {skip}, () => {
  const cnn = HW2Live.model("cnn"), bytes = Buffer.from(golden.cnn.pixels, "base64");
  golden.cnn.maps.forEach((maps, i) => {
    const out = HW2Live.cnn.forward(cnn, Float32Array.from(bytes.subarray(i * 784, (i + 1) * 784), v => v / 256));
    assert.ok(maxDifference(out.conv1, maps.conv1) < 1e-5);
    assert.ok(maxDifference(out.conv2, maps.conv2) < 1e-5);
    assert.ok(out.conv1.some(v => v < 0), "conv1 maps are taken before the ReLU");
    assert.ok(out.conv2.every(v => v >= 0));
  });
});

test("the panel's 200 test images are the first 200 of the golden set", {skip}, () => {
  const cnn = HW2Live.model("cnn"), images = HW2Live.cnn.testImages(cnn);
  assert.equal(images.length, 200);
  const bytes = Buffer.from(golden.cnn.pixels, "base64");
  assert.deepEqual(Array.from(images[199], v => v * 256), Array.from(bytes.subarray(199 * 784, 200 * 784)));
  assert.deepEqual(cnn.meta.images.labels, golden.cnn.labels.slice(0, 200));
});

for (const name of ["translator-a", "translator-b"]) {
  for (const decoder of ["greedy", "beam5", "beam1", "beam3_alpha1"]) {
    test(`${name}, ${decoder}: the library's translations and log-probabilities`, {skip}, () => {
      const translator = HW2Live.model(name), g = golden.translators[name];
      const expected = decoder === "beam1" ? g.greedy : g[decoder];
      const index = new Map(translator.meta.source_symbols.map((s, i) => [s, i]));
      let worst = 0;
      expected.forEach((want, i) => {
        const ids = Array.from(g.sources[i], ch => index.get(ch));
        const got = decoder === "greedy" ? HW2Live.seq2seq.greedyDecode(translator, ids)
          : decoder === "beam3_alpha1" ? HW2Live.seq2seq.beamSearch(translator, ids, 3, {lengthNormalisation: 1})
          : HW2Live.seq2seq.beamSearch(translator, ids, decoder === "beam1" ? 1 : 5);
        assert.deepEqual(got.tokens, want.tokens, `sentence ${i}: ${g.sources[i]}`);
        assert.equal(HW2Live.seq2seq.decodeTokens(translator, got.tokens), want.translation);
        worst = Math.max(worst, Math.abs(got.logProb - want.log_prob));
        if (want.attention) assert.ok(maxDifference(got.attention.flat(), want.attention.flat()) < 1e-5);
        else if (decoder !== "beam3_alpha1" && translator.meta.attention === false) assert.equal(got.attention, null);
      });
      assert.ok(worst < 1e-4, `largest log-probability difference ${worst}`);
    });
  }

  test(`${name}: translate() gives the library's normalisation, notes and output on awkward input`, {skip}, () => {
    const translator = HW2Live.model(name);
    for (const want of golden.translators[name].translate) {
      const got = HW2Live.text.translate(translator, want.text, {beamSize: want.beam_size});
      const label = JSON.stringify(want.text) + " beam " + want.beam_size;
      assert.equal(got.normalised, want.normalised, label);
      assert.deepEqual(got.sourceSymbols, want.source_symbols, label);
      assert.deepEqual(got.notes, want.notes, label);
      assert.equal(got.translation, want.translation, label);
      assert.deepEqual(got.targetSymbols, want.target_symbols, label);
      if (want.log_prob === null) assert.equal(got.logProb, null);
      else assert.ok(Math.abs(got.logProb - want.log_prob) < 1e-4, label);
      if (want.attention) assert.ok(maxDifference(got.attention.flat(), want.attention.flat()) < 1e-5, label);
      else assert.equal(got.attention, null, label);
    }
  });
}

test("normalise follows hw2lib.chardata.normalise", {skip}, () => {
  for (const [text, want] of golden.normalise) assert.equal(HW2Live.text.normalise(text), want, JSON.stringify(text));
});

test("the matrix panel's element rule follows hw2lib.convolution.kernel_index_at", {skip}, () => {
  let zeros = 0;
  for (const {shape: [H, W, M, N], row, col, kernel} of golden.matrix) {
    const entry = HW2Live.matrix.entry(row, col, H, W, M, N);
    assert.deepEqual(entry.kernel, kernel, `M[${row}, ${col}] for ${H}x${W}, ${M}x${N}`);
    assert.equal(entry.a * (W - N + 1) + entry.b, row);
    assert.equal(entry.c * W + entry.d, col);
    zeros += kernel === null;
  }
  assert.ok(zeros > 0 && zeros < golden.matrix.length, "both zero and kernel entries are sampled");
  assert.throws(() => HW2Live.matrix.entry(0, 0, 2, 2, 3, 1), /does not fit/);
});

test("drawings are rasterised exactly as hw2lib.web_export.rasterise_strokes does", {skip}, () => {
  for (const {strokes, stroke_width, pixels} of golden.drawing) {
    const got = HW2Live.cnn.rasteriseStrokes(strokes, {strokeWidth: stroke_width});
    assert.equal(maxDifference(got.pixels, pixels), 0, JSON.stringify(strokes));
  }
});

test("a drawing fills the frame along its longer side, centred, like KMNIST's images", () => {
  // A tall thin L drawn small in one corner of a big canvas.
  const {pixels} = HW2Live.cnn.rasteriseStrokes([[[900, 100], [900, 160], [915, 160]]], {strokeWidth: 2.6});
  const rows = [], columns = [];
  for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) if (pixels[y * 28 + x] > 0.1) { rows.push(y); columns.push(x); }
  assert.equal(Math.min(...rows), 0);
  assert.equal(Math.max(...rows), 27);
  assert.ok(Math.abs((Math.min(...columns) + Math.max(...columns)) / 2 - 13.5) <= 0.5);
  assert.ok(Math.max(...columns) - Math.min(...columns) < 14, "the aspect ratio is kept");
  assert.equal(Math.max(...pixels), 255 / 256, "the darkest value is KMNIST's");
  assert.equal(HW2Live.cnn.rasteriseStrokes([]).pixels.every(v => v === 0), true);
});

test("beam search refuses a beam of size 0 and decoders stop at maxLength", {skip}, () => {
  const translator = HW2Live.model("translator-a");
  assert.throws(() => HW2Live.seq2seq.beamSearch(translator, [4, 5], 0), /at least 1/);
  const ids = Array.from("hola", ch => translator.meta.source_symbols.indexOf(ch));
  assert.equal(HW2Live.seq2seq.greedyDecode(translator, ids, {maxLength: 2}).tokens.length, 2);
  assert.ok(HW2Live.seq2seq.beamSearch(translator, ids, 3, {maxLength: 2}).tokens.length <= 2);
});
