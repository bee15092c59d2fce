// Runs ONNX models in ONNX Runtime's CPU build for resin's tests: node ort_run.js MANIFEST.json
// MANIFEST: [{"model": PATH, "inputs": {NAME: {"file": RAW_F32_PATH, "dims": [...]}},
//             "outputs": {NAME: RAW_F32_PATH}}, ...]
// Each output is written as raw little-endian float32, its dims to PATH.json. One process runs
// every model (onnxruntime-node is found through NODE_PATH).
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const jobs = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  for (const job of jobs) {
    const session = await ort.InferenceSession.create(job.model, {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      intraOpNumThreads: 2,
    });
    const feeds = {};
    for (const [name, input] of Object.entries(job.inputs)) {
      const bytes = fs.readFileSync(input.file);
      const data = new Float32Array(new Uint8Array(bytes).buffer);  // a copy, 4-byte aligned
      feeds[name] = new ort.Tensor('float32', data, input.dims);
    }
    const results = await session.run(feeds);
    for (const [name, path] of Object.entries(job.outputs)) {
      const t = results[name];
      if (!t) throw new Error(`${job.model}: no output named ${name}`);
      fs.writeFileSync(path, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
      fs.writeFileSync(path + '.json', JSON.stringify(t.dims));
    }
    console.log(`${job.model}: ok (onnxruntime ${ort.env.versions.node})`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
