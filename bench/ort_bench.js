// Times ONNX Runtime (CPU) inference for bench/compare_pytorch:
//   NODE_PATH=.deps/ort/node_modules node bench/ort_bench.js MODEL.onnx BATCH CHANNELS SIZE THREADS WARMUP REPS
// Prints one JSON line: {"times": [s...], "cpu": [s...], "version": "..."} (wall and process CPU time
// per run, in seconds). The input is random; the graph is optimised at the highest level, as ORT users do.
'use strict';
const ort = require('onnxruntime-node');

async function main() {
  const [model, batch, channels, size, threads, warmup, reps] = process.argv.slice(2);
  if (reps === undefined) throw new Error('usage: ort_bench.js MODEL BATCH CHANNELS SIZE THREADS WARMUP REPS');
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: Number(threads),
    interOpNumThreads: 1,
  });
  const dims = [Number(batch), Number(channels), Number(size), Number(size)];
  const data = new Float32Array(dims.reduce((a, b) => a * b));
  for (let i = 0; i < data.length; ++i) data[i] = Math.random() * 2 - 1;
  const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', data, dims)};
  for (let i = 0; i < Number(warmup); ++i) await session.run(feeds);
  const times = [], cpu = [];
  for (let i = 0; i < Number(reps); ++i) {
    const c0 = process.cpuUsage(), t0 = process.hrtime.bigint();
    await session.run(feeds);
    const t1 = process.hrtime.bigint(), c1 = process.cpuUsage(c0);
    times.push(Number(t1 - t0) / 1e9);
    cpu.push((c1.user + c1.system) / 1e6);
  }
  console.log(JSON.stringify({times, cpu, version: ort.env.versions.node || 'unknown'}));
}

main().catch((e) => {
  console.error(e.message || e);
  process.exit(1);
});
