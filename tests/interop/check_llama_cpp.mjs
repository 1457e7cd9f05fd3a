// check_llama_cpp.mjs - loads files written by `bitnet synth` with llama.cpp (the
// prebuilt binaries of npm node-llama-cpp, CPU only) and compares what llama.cpp
// reports with what cmd_synth.c promises (lib.mjs).
//
// llama.cpp knows BitNet b1.58 as architecture "bitnet", not "bitnet-b1.58", and has
// no I2_S (its type id 36 is a retired type there). So:
//  1. the file as written: llama.cpp's GGUF reader must list our 24 keys in order with
//     their types and count our tensors and their types, then stop with "unknown model
//     architecture: 'bitnet-b1.58'" (the expected failure);
//  2. each file renamed to "bitnet" (rename_arch.mjs; all other bytes unchanged) must
//     load without an error: parameter, layer, tensor, head, context and vocabulary
//     counts as promised, weights of the size written, vocabulary-only load too; the
//     i2_s one must fail on type 36 (the expected failure);
//  3. with f32, f16, tq1_0 and tq2_0 files of one seed: the next-token probabilities
//     after a few tokens must be finite, equal for tq1_0 and tq2_0 (both hold the same
//     ternary weights and take the same integer dot-product path), close between f16
//     and f32, and different once one block scale of the tq2_0 file is negated.
//
//   node check_llama_cpp.mjs --preset tiny --embd-type f16 TYPE=FILE...
//   (TYPE one of f32 f16 tq1_0 tq2_0 i2_s; --logits no skips part 3)
import { readFileSync, writeFileSync, rmSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, basename } from "node:path";
import { getLlama, LlamaLogLevel, readGgufFileInfo } from "node-llama-cpp";
import { renameArch } from "./rename_arch.mjs";
import { check, finish, parseArgs, PRESETS, GGUF, expectedMetadata, expectedTensors,
         parameterCount } from "./lib.mjs";

const { opts, rest } = parseArgs(process.argv.slice(2));
const shape = PRESETS[opts.preset ?? "tiny"];
const embd = opts["embd-type"] ?? "f16";
const files = Object.fromEntries(rest.map((a) => a.split("=")));
if (!shape || !rest.length || rest.some((a) => !a.includes("="))) {
    console.error("usage: node check_llama_cpp.mjs --preset tiny|2b-4t --embd-type T " +
                  "TYPE=FILE... [--logits no]");
    process.exit(2);
}
const work = mkdtempSync(join(tmpdir(), "bitnet-llama-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));

// llama.cpp's log, one entry per line, gathered between loads.
let log = [];
const llama = await getLlama({
    gpu: false, build: "never", usePrebuiltBinaries: true, skipDownload: true,
    progressLogs: false, logLevel: LlamaLogLevel.debug,
    logger: (level, text) => {
        for (const line of String(text).split("\n")) if (line.trim()) log.push({ level, line });
    },
});
const errors = () => log.filter((l) => l.level === LlamaLogLevel.error).map((l) => l.line);
const logged = (re) => log.map((l) => l.line.match(re)).find((m) => m);

// llama.cpp's log lines reach JS asynchronously: waits until none came for 100 ms.
async function settle() {
    for (let i = 0; i < 50; i++) {
        const n = log.length;
        await new Promise((resolve) => setTimeout(resolve, 100));
        if (log.length === n) return;
    }
}

// Loads a model, returning {model} or {error: message and llama.cpp's error lines}.
async function load(path, options = {}) {
    await settle();
    log = [];
    let result;
    try {
        result = { model: await llama.loadModel({ modelPath: path, gpuLayers: 0, ...options }) };
    } catch (e) {
        result = { error: e.message };
    }
    await settle();
    if (result.error) result.error = [result.error, ...errors()].join(" | ");
    return result;
}

// llama.cpp's names of metadata types in its key dump ("u32", "arr[str,512]").
function llamaTypeName(kv) {
    const names = { [GGUF.U32]: "u32", [GGUF.I32]: "i32", [GGUF.F32]: "f32",
                    [GGUF.BOOL]: "bool", [GGUF.STRING]: "str" };
    return kv.type === GGUF.ARRAY ? `arr[${names[kv.subType]},${kv.value.length}]`
                                  : names[kv.type];
}

// Checks llama.cpp's dump of the metadata keys and the tensor census of the log.
function checkKeyDump(what, meta, tensors) {
    const dump = log.map((l) => l.line.match(/- kv\s+(\d+):\s+(\S+)\s+(\S+)\s+=/))
                    .filter((m) => m).map((m) => `${m[1]} ${m[2]} ${m[3]}`);
    const want = meta.map((kv, i) => `${i} ${kv.key} ${llamaTypeName(kv)}`);
    const diff = want.findIndex((w, i) => dump[i] !== w);
    check(`${what}: llama.cpp lists the ${meta.length} keys in order with their types`,
          diff < 0 && dump.length === want.length,
          diff < 0 ? `${dump.length} keys listed` : `"${dump[diff]}", expected "${want[diff]}"`);
    const head = logged(/loaded meta data with (\d+) key-value pairs and (\d+) tensors/);
    check(`${what}: llama.cpp counts ${meta.length} keys and ${tensors.length} tensors`,
          head && +head[1] === meta.length && +head[2] === tensors.length,
          head ? head[0] : "no 'loaded meta data' line");
    const census = {};
    for (const t of tensors) census[t.type] = (census[t.type] ?? 0) + 1;
    const bad = Object.entries(census).filter(([type, n]) => {
        const m = logged(new RegExp(`- type\\s+${type}:\\s+(\\d+) tensors`, "i"));
        return !m || +m[1] !== n;
    });
    check(`${what}: llama.cpp's count of tensors by type`, bad.length === 0,
          bad.map(([t, n]) => `${t}: expected ${n}`).join(", "));
}

const sh = shape;
const kvDim = sh.n_embd / sh.n_head * sh.n_head_kv;

// --- 1. the files as written: parsed, then refused for the architecture name
{
    const [type, path] = Object.entries(files).find(([t]) => t !== "i2_s") ?? [];
    if (path) {
        const what = `llama.cpp ${basename(path)} (as written)`;
        const r = await load(path);
        check(`${what}: refused for its architecture name only`,
              r.error?.includes("unknown model architecture: 'bitnet-b1.58'"),
              r.error ?? "it loaded");
        checkKeyDump(what, expectedMetadata(sh, type), expectedTensors(sh, type, embd));
        await r.model?.dispose();
    }
}

// --- 2. renamed to "bitnet": loads, with the promised shape
const renamed = {};
for (const [type, path] of Object.entries(files)) {
    const out = join(work, basename(path).replace(/\.gguf$/, "") + ".bitnet.gguf");
    renameArch(path, out, "bitnet");
    renamed[type] = out;
    const what = `llama.cpp ${basename(path)} (arch renamed to bitnet)`;
    const tensors = expectedTensors(sh, type, embd);
    const r = await load(out);
    if (type === "i2_s") {
        check(`${what}: refused for tensor type 36 (I2_S is not llama.cpp's)`,
              /tensor 'blk\.0\.attn_q\.weight' of type 36/.test(r.error ?? ""),
              r.error ?? "it loaded");
        continue;
    }
    if (!check(`${what}: loads without errors`, r.model && errors().length === 0,
               r.error ?? errors().slice(0, 3).join(" | ")))
        continue;
    const m = r.model;
    checkKeyDump(what, expectedMetadata(sh, type, "bitnet"), tensors);
    // llama_model_n_params, reached through node-llama-cpp's internal handle (pinned)
    const nParams = m._model?.getTotalParameters?.();
    check(`${what}: ${parameterCount(tensors)} parameters`, nParams === parameterCount(tensors),
          `llama.cpp counts ${nParams}`);
    const bytes = tensors.reduce((n, t) => n + t.nbytes, 0);
    check(`${what}: ${bytes} bytes of weights`, m.size === bytes, `llama.cpp counts ${m.size}`);
    const hp = { n_layer: sh.n_layer, n_head: sh.n_head, n_head_kv: sh.n_head_kv,
                 n_embd: sh.n_embd, n_ff: sh.n_ff, n_vocab: sh.n_vocab, n_ctx_train: sh.n_ctx,
                 n_rot: sh.n_embd / sh.n_head, n_embd_k_gqa: kvDim };
    const hbad = Object.entries(hp).filter(([k, v]) => {
        const g = logged(new RegExp(`print_info: ${k}\\s+= (\\d+)$`));
        return !g || +g[1] !== v;
    });
    check(`${what}: hyperparameters (layers, heads, widths, vocabulary, context)`,
          hbad.length === 0, hbad.map(([k, v]) => `${k}: expected ${v}`).join(", "));
    check(`${what}: context ${sh.n_ctx}, width ${sh.n_embd}, BOS/EOS ids`,
          m.trainContextSize === sh.n_ctx && m.embeddingVectorSize === sh.n_embd &&
          m.tokens.bos === sh.n_vocab - (sh.n_vocab >= 4096 ? 256 : 16) &&
          m.tokens.eos === m.tokens.bos + 1,
          `${m.trainContextSize} ${m.embeddingVectorSize} ${m.tokens.bos} ${m.tokens.eos}`);
    await m.dispose();
    const v = await load(out, { vocabOnly: true });
    check(`${what}: vocabulary-only load`, v.model && errors().length === 0 &&
          logged(/vocab only - skipping tensors/), v.error ?? errors().join(" | "));
    await v.model?.dispose();
}

// --- 3. next-token probabilities agree across the formats
// Next-token log-probabilities after `tokens` (BOS then a few ids), as a Float64Array.
async function logProbs(path, tokens) {
    const m = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
    const ctx = await m.createContext({ contextSize: 64, batchSize: 16, threads: 2 });
    const input = tokens.map((t, i) => i < tokens.length - 1 ? t
                                       : [t, { generateNext: { probabilities: true } }]);
    const res = await ctx.getSequence().controlledEvaluate(input);
    const probs = res[tokens.length - 1]?.next?.probabilities ?? new Map();
    const out = new Float64Array(sh.n_vocab).fill(NaN);
    for (const [id, p] of probs) out[id] = Math.log(p);
    await ctx.dispose();
    await m.dispose();
    return out;
}

function maxDiff(a, b) {
    let d = 0;
    for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
    return d;  // NaN anywhere makes it NaN, failing every bound
}

if (opts.logits !== "no" && ["f32", "f16", "tq1_0", "tq2_0"].every((t) => renamed[t])) {
    const tokens = [sh.n_vocab - 256, 5, 17, 42];
    const lp = {};
    for (const t of ["f32", "f16", "tq1_0", "tq2_0"]) lp[t] = await logProbs(renamed[t], tokens);
    const what = "llama.cpp next-token log-probabilities";
    check(`${what}: all finite`, Object.values(lp).every((a) => a.every(Number.isFinite)));
    const d12 = maxDiff(lp.tq1_0, lp.tq2_0), d16 = maxDiff(lp.f16, lp.f32);
    const dtq = maxDiff(lp.tq2_0, lp.f16);
    check(`${what}: tq1_0 = tq2_0 exactly`, d12 === 0, `max difference ${d12}`);
    check(`${what}: f16 within 0.01 of f32 (${d16.toPrecision(2)})`, d16 < 0.01);
    // tq2_0 runs its activations through 8-bit quantization (q8_K): a looser bound
    check(`${what}: tq2_0 within 0.1 of f16 (${dtq.toPrecision(2)})`, dtq < 0.1);
    // the control: negate the f16 scale of the first block of one projection
    const buf = readFileSync(renamed.tq2_0);
    const info = await readGgufFileInfo(renamed.tq2_0, { logWarnings: false });
    const probe = info.fullTensorInfo.find((t) => t.name === "blk.0.attn_v.weight");
    buf[probe.fileOffset + 65] ^= 0x80;  // sign bit of block 0's f16 scale (bytes 64-65)
    const control = join(work, "control.gguf");
    writeFileSync(control, buf);
    const lc = await logProbs(control, tokens);
    const dc = maxDiff(lc, lp.tq2_0);
    check(`${what}: a file with one block scale negated differs (${dc.toPrecision(2)})`,
          dc > 0, "no difference: the comparison cannot see a changed block");
}

finish("llama.cpp");
