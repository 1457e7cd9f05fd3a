// llama_logits.mjs - dumps llama.cpp's next-token log-probabilities for a token list,
// through npm node-llama-cpp's prebuilt CPU binaries (the packages installed under
// tests/interop/node_modules, or NODE_LLAMA_CPP_DIR).
//
// node-llama-cpp gives probabilities, not raw logits: we write log(p), i.e. the
// log-softmax of llama.cpp's logits, one row per position, raw little-endian float32
// [n_tokens, n_vocab]. Compare it with the log-softmax of bitnet_ref.py's logits.
// With --greedy N, also runs N greedy steps (argmax of the probabilities) on the same
// sequence (llama.cpp's KV cache) and prints the ids.
//
//   node scripts/reference/llama_logits.mjs MODEL.gguf --tokens 1,2,3 --out lp.f32 [--greedy N] [--kv f32|f16]
// (--kv: asks for llama.cpp's KV cache type, f32 by default here. Measured: the output
// is bit-identical with f32 and f16, so this version seems to keep an f16 cache; see
// README.md for the effect on the comparison.)
// The model must be a file llama.cpp loads: a `bitnet synth` file renamed to arch
// "bitnet" with tests/interop/rename_arch.mjs, projections in f32/f16/tq1_0/tq2_0.
import { writeFileSync, existsSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

// node-llama-cpp from NODE_LLAMA_CPP_DIR, else from tests/interop/node_modules (an ES
// module resolves packages from its own folder, not from the working directory)
const here = dirname(fileURLToPath(import.meta.url));
const pkgDir = process.env.NODE_LLAMA_CPP_DIR ??
    join(here, "..", "..", "tests", "interop", "node_modules", "node-llama-cpp");
const entry = join(pkgDir, "dist", "index.js");
if (!existsSync(entry)) {
    console.error(`node-llama-cpp not found at ${pkgDir} (run tests/interop/run.sh once)`);
    process.exit(77);
}
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(entry).href);

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : dflt;
};
const modelPath = argv[0];
const tokens = (opt("--tokens", "") || "").split(",").filter((s) => s).map(Number);
const out = opt("--out", null);
const greedy = Number(opt("--greedy", "0"));
const kvType = (opt("--kv", "f32") || "f32").toUpperCase();   // llama.cpp's default is F16
if (!modelPath || !tokens.length) {
    console.error("usage: node llama_logits.mjs MODEL.gguf --tokens 1,2,3 [--out F] [--greedy N]");
    process.exit(2);
}

const llama = await getLlama({
    gpu: false, build: "never", usePrebuiltBinaries: true, skipDownload: true,
    progressLogs: false, logLevel: LlamaLogLevel.error,
});
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const nVocab = model.tokens.vocabularySize ?? model.fileInsights?.vocabularySize;
const ctx = await model.createContext({
    contextSize: 256, batchSize: 64, threads: 2,
    experimentalKvCacheKeyType: kvType, experimentalKvCacheValueType: kvType,
});
const seq = ctx.getSequence();

// log-probabilities of one position's next token, as a Float32Array of n_vocab
function logProbRow(probs, n) {
    const row = new Float32Array(n).fill(NaN);
    for (const [id, p] of probs) row[id] = Math.log(p);
    return row;
}
function argmax(probs) {
    let best = -1, bp = -1;
    for (const [id, p] of probs) if (p > bp || (p === bp && id < best)) { bp = p; best = id; }
    return best;
}

const res = await seq.controlledEvaluate(
    tokens.map((t) => [t, { generateNext: { probabilities: true } }]));
const rows = res.map((r) => r.next.probabilities);
const n = nVocab ?? Math.max(...[...rows[0].keys()]) + 1;
if (out) {
    const all = new Float32Array(tokens.length * n);
    rows.forEach((p, i) => all.set(logProbRow(p, n), i * n));
    writeFileSync(out, Buffer.from(all.buffer));
}
console.log(`n_vocab ${n}`);
console.log(`argmax_last ${argmax(rows[rows.length - 1])}`);
if (greedy > 0) {
    const gen = [];
    let next = argmax(rows[rows.length - 1]);
    for (let i = 0; i < greedy; i++) {
        gen.push(next);
        if (i + 1 === greedy) break;
        const r = await seq.controlledEvaluate([[next, { generateNext: { probabilities: true } }]]);
        next = argmax(r[0].next.probabilities);
    }
    console.log(`greedy ${gen.join(",")}`);
}
await ctx.dispose();
await model.dispose();
