// check_hf_gguf.mjs - reads a file written by `bitnet synth` with Hugging Face's GGUF
// parser (npm @huggingface/gguf) and compares everything it reports with what
// cmd_synth.c promises (lib.mjs): every metadata key in order with its type and value,
// every tensor's name, type id, shape and offset, the data offset, the parameter count.
// With --values, it also reads each tensor's bytes at (data offset + tensor offset), as
// the parser located them, and compares them with values regenerated here: the trits
// of each projection exactly, all of them times one scale (synth's, to within f16
// rounding), norms and embedding to ~1e-6 (f32) or f16 rounding.
//
//   node check_hf_gguf.mjs FILE --preset tiny --type tq2_0 --embd-type f16
//                          [--seed 1] [--values yes]
import { openSync, readSync, closeSync, statSync } from "node:fs";
import { basename } from "node:path";
import { gguf } from "@huggingface/gguf";
import { check, finish, parseArgs, PRESETS, expectedMetadata, expectedTensors,
         expectedDataOffset, expectedFileSize, parameterCount, regenerate,
         decodeFloats } from "./lib.mjs";

const { opts, rest } = parseArgs(process.argv.slice(2));
const file = rest[0];
const shape = PRESETS[opts.preset ?? "tiny"];
const proj = opts.type ?? "i2_s", embd = opts["embd-type"] ?? "f16";
const seed = Number(opts.seed ?? 1);
if (!file || !shape) {
    console.error("usage: node check_hf_gguf.mjs FILE --preset tiny|2b-4t --type T " +
                  "--embd-type T [--seed N] [--values yes]");
    process.exit(2);
}
const name = `hf-gguf ${basename(file)}`;
const meta = expectedMetadata(shape, proj);
const tensors = expectedTensors(shape, proj, embd);

// Compares two values (arrays element by element); returns a description of the first
// difference, or "" when equal.
function differ(got, want, path = "") {
    if (Array.isArray(want)) {
        if (!Array.isArray(got)) return `${path}: not an array`;
        if (got.length !== want.length)
            return `${path}: ${got.length} items, expected ${want.length}`;
        for (let i = 0; i < want.length; i++) {
            const d = differ(got[i], want[i], `${path}[${i}]`);
            if (d) return d;
        }
        return "";
    }
    const show = (v) => JSON.stringify(String(v));
    return got === want ? "" : `${path}: ${show(got)}, expected ${show(want)}`;
}

const r = await gguf(file, { allowLocalFile: true, typedMetadata: true,
                             computeParametersCount: true });
const tm = r.typedMetadata;

// --- header and metadata
check(`${name}: GGUF version 3, little-endian`, tm.version.value === 3 && r.littleEndian);
check(`${name}: tensor_count`, tm.tensor_count.value === BigInt(tensors.length),
      `${tm.tensor_count.value}, expected ${tensors.length}`);
check(`${name}: kv_count`, tm.kv_count.value === BigInt(meta.length),
      `${tm.kv_count.value}, expected ${meta.length}`);
const keys = Object.keys(tm).filter((k) => !["version", "tensor_count", "kv_count"].includes(k));
check(`${name}: ${meta.length} keys in order`, differ(keys, meta.map((m) => m.key)) === "",
      differ(keys, meta.map((m) => m.key)));
const bad = [];
for (const want of meta) {
    const got = tm[want.key];
    if (!got) continue;  // reported by the order check
    if (got.type !== want.type) bad.push(`${want.key}: type ${got.type}, expected ${want.type}`);
    else if (want.subType !== undefined && got.subType !== want.subType)
        bad.push(`${want.key}: element type ${got.subType}, expected ${want.subType}`);
    else {
        const d = differ(got.value, want.value, want.key);
        if (d) bad.push(d);
    }
}
check(`${name}: metadata types and values`, bad.length === 0, bad.slice(0, 5).join("; "));

// --- tensor table
const tbad = [];
if (r.tensorInfos.length !== tensors.length)
    tbad.push(`${r.tensorInfos.length} tensors, expected ${tensors.length}`);
tensors.forEach((want, i) => {
    const got = r.tensorInfos[i];
    if (!got) return;
    const gshape = got.shape.map(Number).join("x"), wshape = want.shape.join("x");
    if (got.name !== want.name || got.dtype !== want.id || got.n_dims !== want.shape.length ||
        gshape !== wshape || got.offset !== BigInt(want.offset))
        tbad.push(`#${i} ${got.name} type ${got.dtype} shape ${gshape} offset ${got.offset}, ` +
                  `expected ${want.name} type ${want.id} shape ${wshape} offset ${want.offset}`);
});
check(`${name}: ${tensors.length} tensors (name, type id, shape, offset)`, tbad.length === 0,
      tbad.slice(0, 3).join("; "));
const dataOffset = expectedDataOffset(meta, tensors);
check(`${name}: tensor data offset`, r.tensorDataOffset === BigInt(dataOffset),
      `${r.tensorDataOffset}, expected ${dataOffset}`);
check(`${name}: file size`, statSync(file).size === expectedFileSize(meta, tensors),
      `${statSync(file).size}, expected ${expectedFileSize(meta, tensors)}`);
check(`${name}: parameter count`, r.parameterCount === parameterCount(tensors),
      `${r.parameterCount}, expected ${parameterCount(tensors)}`);

// --- tensor bytes, at the offsets the parser reported
if (opts.values === "yes") {
    const fd = openSync(file, "r");
    const vbad = [];
    for (const want of tensors) {
        const info = r.tensorInfos[want.index];
        if (!["f32", "f16"].includes(want.type) || !info) {
            vbad.push(`${want.name}: cannot decode ${want.type}`);
            continue;
        }
        const bytes = Buffer.alloc(want.nbytes);
        readSync(fd, bytes, 0, want.nbytes, Number(r.tensorDataOffset + info.offset));
        const got = decodeFloats(want.type, bytes);
        const exp = regenerate(want, seed);
        // f16 keeps 11 significant bits; f32 values differ from ours only through libm
        const rel = want.type === "f16" ? 2 ** -11 : 2 ** -23;
        if (want.kind === 0) {
            // ternary: every weight is -s, 0 or +s for one s, in the regenerated pattern
            const s = Math.abs(got.find((v) => v !== 0) ?? 0);
            let wrong = -1;
            for (let i = 0; i < got.length && wrong < 0; i++)
                if (got[i] !== exp.values[i] * s) wrong = i;
            // (synth rounds each scale to one f16 holds, for the f16-scaled formats)
            if (Math.abs(s - exp.scale) > exp.scale * 2 ** -11)
                vbad.push(`${want.name}: scale ${s}, expected ${exp.scale}`);
            else if (wrong >= 0)
                vbad.push(`${want.name}[${wrong}] = ${got[wrong]}, ` +
                          `expected ${exp.values[wrong] * s}`);
        } else {
            // finite and within rounding of ours (NaN fails the comparison)
            let wrong = -1;
            for (let i = 0; i < got.length && wrong < 0; i++)
                if (!(Math.abs(got[i] - exp.values[i]) <= Math.abs(exp.values[i]) * rel + 2e-6))
                    wrong = i;
            if (wrong >= 0)
                vbad.push(`${want.name}[${wrong}] = ${got[wrong]}, expected ${exp.values[wrong]}`);
        }
    }
    closeSync(fd);
    check(`${name}: tensor bytes match the regenerated values (${tensors.length} tensors)`,
          vbad.length === 0, vbad.slice(0, 3).join("; "));
}

finish(name);
