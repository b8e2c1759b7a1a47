// ONNX Runtime contender for compare.py: one process per network, driven by JSON lines on stdin.
//   {"cmd": "load", "onnx": path, "shape": [N, 3, S, S], "spinning": true}  -> {"ok": true}
//   {"cmd": "time", "n": k}                   -> {"ms": [k wall times of session.run]}
//   {"cmd": "embed", "input": f32, "output": f32}  -> {"ok": true}  (raw little-endian float32 files)
// Usage: node ort_worker.js NODE_MODULES_DIR
'use strict';
const fs = require('fs');
const path = require('path');
const readline = require('readline');

const ort = require(path.join(process.argv[2], 'onnxruntime-node'));
let session = null;
let feeds = null;

async function load(msg) {
  // Two intra-op threads, as every contender gets; ORT spins its pool threads between runs unless told not to.
  session = await ort.InferenceSession.create(msg.onnx, {
    intraOpNumThreads: msg.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: {session: {intra_op: {allow_spinning: msg.spinning ? '1' : '0'}}},
  });
  const n = msg.shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  for (let i = 0; i < n; ++i) x[i] = Math.sin(0.001 * i);  // any finite input: timing only
  feeds = {[session.inputNames[0]]: new ort.Tensor('float32', x, msg.shape)};
  for (let i = 0; i < msg.warmup; ++i) await session.run(feeds);
  const version = require(path.join(process.argv[2], 'onnxruntime-node', 'package.json')).version;
  return {ok: true, config: `onnxruntime-node ${version}, ${msg.spinning ? 'spinning' : 'non-spinning'} intra-op threads`};
}

async function time(msg) {
  const ms = [];
  for (let i = 0; i < msg.n; ++i) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return {ms};
}

async function embed(msg) {
  const buf = fs.readFileSync(msg.input);
  const x = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const out = await session.run({[session.inputNames[0]]: new ort.Tensor('float32', x, msg.shape)});
  const y = out[session.outputNames[0]].data;
  fs.writeFileSync(msg.output, Buffer.from(y.buffer, y.byteOffset, y.byteLength));
  return {ok: true};
}

const handlers = {load, time, embed};
const rl = readline.createInterface({input: process.stdin});
let queue = Promise.resolve();
rl.on('line', (line) => {
  // Commands run strictly one after another, in arrival order.
  queue = queue.then(async () => {
    let reply;
    try {
      const msg = JSON.parse(line);
      if (!handlers[msg.cmd]) throw new Error(`unknown command '${msg.cmd}'`);
      reply = await handlers[msg.cmd](msg);
    } catch (e) {
      reply = {error: String(e && e.message ? e.message : e)};
    }
    process.stdout.write(JSON.stringify(reply) + '\n');
  });
});
