// lib.mjs - what a file written by `bitnet synth` must contain, worked out here from
// the promises of cmd_synth.c (presets, key list, tensor list, generator) and from
// ggml's type sizes, never from our own reader; plus a small check counter.
//
// Everything a reader reports is compared with these expectations: metadata keys in
// order with their GGUF types and values, the tensor table (name, type id, shape,
// offset), the data offset (from the header's encoded size), the file size, and the
// tensor values, which are regenerated here from the same seeded generator.

// ------------------------------------------------------------------ checks

let passed = 0, failed = 0;

// Counts one check; prints a line for it ("ok" quietly unless verbose).
export function check(what, ok, detail = "") {
    if (ok) {
        passed++;
        if (process.env.VERBOSE) console.log(`ok   ${what}`);
    } else {
        failed++;
        console.log(`FAIL ${what}${detail ? ": " + detail : ""}`);
    }
    return ok;
}

// Prints the closing line that run.sh sums, and sets the exit code.
export function finish(name) {
    console.log(`${name}: ${passed} passed, ${failed} failed`);
    process.exitCode = failed ? 1 : 0;
}

// Parses "--name value" options and bare arguments.
export function parseArgs(argv) {
    const opts = {}, rest = [];
    for (let i = 0; i < argv.length; i++) {
        if (argv[i].startsWith("--") && i + 1 < argv.length) opts[argv[i].slice(2)] = argv[++i];
        else rest.push(argv[i]);
    }
    return { opts, rest };
}

// ------------------------------------------------------------------ the promises

// `bitnet synth --preset NAME` shapes (cmd_synth.c's help text).
export const PRESETS = {
    "tiny": { n_embd: 256, n_ff: 768, n_head: 4, n_head_kv: 2, n_layer: 2, n_vocab: 512,
              n_ctx: 1024 },
    "2b-4t": { n_embd: 2560, n_ff: 6912, n_head: 20, n_head_kv: 5, n_layer: 30,
               n_vocab: 128256, n_ctx: 4096 },
};

// GGUF metadata value types (the GGUF spec).
export const GGUF = { U8: 0, I8: 1, U16: 2, I16: 3, U32: 4, I32: 5, F32: 6, BOOL: 7,
                      STRING: 8, ARRAY: 9, U64: 10, I64: 11, F64: 12 };

// ggml tensor types: id, elements per block, bytes per block (ggml's type traits);
// I2_S is bitnet.cpp's: 2 bits a weight, then a 32-byte tail holding the scale.
export const QTYPES = {
    f32:   { id: 0,  block: 1,   bytes: 4 },
    f16:   { id: 1,  block: 1,   bytes: 2 },
    q8_0:  { id: 8,  block: 32,  bytes: 34 },
    q6_k:  { id: 14, block: 256, bytes: 210 },
    tq1_0: { id: 34, block: 256, bytes: 54 },
    tq2_0: { id: 35, block: 256, bytes: 66 },
    i2_s:  { id: 36, block: 4,   bytes: 1, tail: 32 },
};

// general.file_type of a model with projections of `proj` (llama.cpp's LLAMA_FTYPE).
const FILE_TYPE = { f32: 0, f16: 1, tq1_0: 36, tq2_0: 37, i2_s: 40 };

export const ARCH = "bitnet-b1.58";
export const ALIGNMENT = 32;
export const CHAT_TEMPLATE =
    "{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}" +
    "{% if message['role'] == 'system' %}{{ 'System: ' + message['content'] + " +
    "'<|eot_id|>' }}{% elif message['role'] == 'user' %}" +
    "{{ 'User: ' + message['content'] + '<|eot_id|>' }}" +
    "{% else %}{{ 'Assistant: ' + message['content'] + '<|eot_id|>' }}{% endif %}" +
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

function tensorBytes(type, ne0, ne1) {
    const q = QTYPES[type], n = ne0 * ne1;
    if (q.tail !== undefined) return n / q.block * q.bytes + q.tail;
    return (ne0 / q.block) * q.bytes * ne1;
}

const align = (n) => Math.ceil(n / ALIGNMENT) * ALIGNMENT;

// The 24 keys in the order cmd_synth.c writes them: [{key, type, subType, value}].
export function expectedMetadata(sh, proj, arch = ARCH) {
    // a byte-level BPE vocabulary: the 256 byte tokens (GPT-2's alphabet), strings of
    // 2, 3, 4... lower-case letters, then the special tokens (LLaMA 3's offsets)
    const nSpecial = sh.n_vocab >= 4096 ? 256 : 16, nWords = sh.n_vocab - 256 - nSpecial;
    const tokens = [], types = [], merges = [], words = [];
    let k = 0;
    for (let b = 0; b < 256; b++) {
        const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        tokens.push(String.fromCodePoint(printable ? b : 256 + k++));
    }
    for (let L = 2; words.length < nWords; L++) {
        for (let v = 0; v < 26 ** L && words.length < nWords; v++) {
            let w = "";
            for (let x = v, q = 0; q < L; q++, x = Math.floor(x / 26))
                w = String.fromCharCode(97 + x % 26) + w;
            words.push(w);
        }
    }
    for (const w of words) tokens.push(w);
    const named = { 0: "<|begin_of_text|>", 1: "<|end_of_text|>", 4: "<|finetune_right_pad_id|>",
                    6: "<|start_header_id|>", 7: "<|end_header_id|>", 8: "<|eom_id|>",
                    9: "<|eot_id|>", 10: "<|python_tag|>" };
    for (let i = 0; i < nSpecial; i++)
        tokens.push(named[i] ?? `<|reserved_special_token_${i === 5 ? 2 : i < 5 ? i - 2 : i - 8}|>`);
    for (let i = 0; i < sh.n_vocab; i++) types.push(i >= sh.n_vocab - nSpecial ? 3 : 1);
    const nMerges = sh.n_vocab === 128256 ? 280147 : 2 * sh.n_vocab;
    for (const w of words) {
        if (merges.length === nMerges) break;
        merges.push(w.slice(0, -1) + " " + w.slice(-1));
    }
    for (let split = 1; split < 6 && merges.length < nMerges; split++)
        for (const w of words) {
            if (merges.length === nMerges) break;
            if (split < w.length - 1) merges.push(w.slice(0, split) + " " + w.slice(split));
        }
    const bos = sh.n_vocab - nSpecial;
    const u32 = (key, value) => ({ key, type: GGUF.U32, value });
    const f32 = (key, value) => ({ key, type: GGUF.F32, value: Math.fround(value) });
    const str = (key, value) => ({ key, type: GGUF.STRING, value });
    const arr = (key, subType, value) => ({ key, type: GGUF.ARRAY, subType, value });
    return [
        str("general.architecture", arch),
        str("general.name", "synthetic bitnet2b"),
        u32(`${arch}.vocab_size`, sh.n_vocab),
        u32(`${arch}.context_length`, sh.n_ctx),
        u32(`${arch}.embedding_length`, sh.n_embd),
        u32(`${arch}.block_count`, sh.n_layer),
        u32(`${arch}.feed_forward_length`, sh.n_ff),
        u32(`${arch}.rope.dimension_count`, sh.n_embd / sh.n_head),
        u32(`${arch}.attention.head_count`, sh.n_head),
        u32(`${arch}.attention.head_count_kv`, sh.n_head_kv),
        { key: "tokenizer.ggml.add_bos_token", type: GGUF.BOOL, value: true },
        f32(`${arch}.attention.layer_norm_rms_epsilon`, 1e-5),
        f32(`${arch}.rope.freq_base`, 500000),
        u32("general.file_type", FILE_TYPE[proj]),
        str("tokenizer.ggml.model", "gpt2"),
        arr("tokenizer.ggml.tokens", GGUF.STRING, tokens),
        arr("tokenizer.ggml.scores", GGUF.F32, new Array(sh.n_vocab).fill(0)),
        arr("tokenizer.ggml.token_type", GGUF.I32, types),
        arr("tokenizer.ggml.merges", GGUF.STRING, merges),
        u32("tokenizer.ggml.bos_token_id", bos),
        u32("tokenizer.ggml.eos_token_id", bos + 1),
        u32("tokenizer.ggml.padding_token_id", bos + 1),
        str("tokenizer.chat_template", CHAT_TEMPLATE),
        u32("general.quantization_version", 2),
    ];
}

// The tensor table: [{name, type, id, shape, nbytes, offset, kind, index}]; kind 0 a
// ternary projection, 1 a norm, 2 the embedding (as the generator calls them).
export function expectedTensors(sh, proj, embd) {
    const e = sh.n_embd, kv = sh.n_embd / sh.n_head * sh.n_head_kv, ff = sh.n_ff;
    const list = [];
    const add = (name, type, shape, kind) => list.push({ name, type, shape, kind });
    add("token_embd.weight", embd, [e, sh.n_vocab], 2);
    for (let l = 0; l < sh.n_layer; l++) {
        const b = `blk.${l}.`;
        add(b + "attn_norm.weight", "f32", [e], 1);
        add(b + "attn_q.weight", proj, [e, e], 0);
        add(b + "attn_k.weight", proj, [e, kv], 0);
        add(b + "attn_v.weight", proj, [e, kv], 0);
        add(b + "attn_output.weight", proj, [e, e], 0);
        add(b + "attn_sub_norm.weight", "f32", [e], 1);
        add(b + "ffn_norm.weight", "f32", [e], 1);
        add(b + "ffn_gate.weight", proj, [e, ff], 0);
        add(b + "ffn_up.weight", proj, [e, ff], 0);
        add(b + "ffn_down.weight", proj, [ff, e], 0);
        add(b + "ffn_sub_norm.weight", "f32", [ff], 1);
    }
    add("output_norm.weight", "f32", [e], 1);
    let offset = 0;
    list.forEach((t, index) => {
        t.index = index;
        t.id = QTYPES[t.type].id;
        t.nbytes = tensorBytes(t.type, t.shape[0], t.shape[1] ?? 1);
        t.offset = offset;
        offset += align(t.nbytes);
    });
    return list;
}

export function parameterCount(tensors) {
    return tensors.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
}

// Bytes of a metadata value as GGUF encodes it.
function valueBytes(type, value, subType) {
    const scalar = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
    if (type === GGUF.STRING) return 8 + Buffer.byteLength(value, "utf8");
    if (type === GGUF.ARRAY)
        return 12 + value.reduce((n, v) => n + valueBytes(subType, v), 0);
    return scalar[type];
}

// File offset of the tensor data: the header's encoded size, padded to the alignment.
export function expectedDataOffset(meta, tensors) {
    let n = 4 + 4 + 8 + 8;
    for (const kv of meta)
        n += 8 + Buffer.byteLength(kv.key, "utf8") + 4 + valueBytes(kv.type, kv.value, kv.subType);
    for (const t of tensors)
        n += 8 + Buffer.byteLength(t.name, "utf8") + 4 + 8 * t.shape.length + 4 + 8;
    return align(n);
}

export function expectedFileSize(meta, tensors) {
    const last = tensors[tensors.length - 1];
    return expectedDataOffset(meta, tensors) + last.offset + align(last.nbytes);
}

// ------------------------------------------------------------------ the generator

// cmd_synth.c's generator, redone: splitmix64 seeded per tensor with
// seed * 1000003 + (index + 1); a projection draws its scale 0.5 + 1.5u (synth rounds
// it to an f16 value, so compare scales to within 2^-11) then one trit (next % 3 - 1)
// per weight; a norm is 1 + 0.1 N(0,1), the embedding 0.02 N(0,1), each normal from two
// uniforms by Box-Muller. The trits come out exactly; norms and the embedding go
// through libm's float logf/sqrtf/cosf, so they match to ~1e-6.
const M64 = (1n << 64n) - 1n;

function makeRng(seed) {
    let s = BigInt.asUintN(64, seed);
    const next = () => {
        s = (s + 0x9e3779b97f4a7c15n) & M64;
        let z = s;
        z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
        z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
        return z ^ (z >> 31n);
    };
    const uniform = () => Number(next() >> 40n) / 16777216;
    const normal = () => {
        let u1 = uniform();
        const u2 = uniform();
        if (u1 < Math.fround(1e-7)) u1 = Math.fround(1e-7);
        return Math.sqrt(-2 * Math.log(u1)) * Math.cos(Math.fround(6.2831853) * u2);
    };
    return { next, uniform, normal };
}

// The values of tensor `t` of a file written with --seed `seed`: {values: Float64Array,
// scale} (scale only for projections, with the trits in `values` as -1/0/+1).
export function regenerate(t, seed) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const rng = makeRng(BigInt(seed) * 1000003n + BigInt(t.index + 1));
    const values = new Float64Array(n);
    if (t.kind === 0) {
        const scale = Math.fround(0.5 + Math.fround(1.5 * rng.uniform()));
        for (let i = 0; i < n; i++) values[i] = Number(rng.next() % 3n) - 1;
        return { values, scale };
    }
    const [base, spread] = t.kind === 1 ? [1, 0.1] : [0, 0.02];
    for (let i = 0; i < n; i++) values[i] = base + spread * rng.normal();
    return { values };
}

// Decodes little-endian f32 or f16 values.
export function decodeFloats(type, bytes) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const n = bytes.byteLength / QTYPES[type].bytes, out = new Float64Array(n);
    for (let i = 0; i < n; i++)
        out[i] = type === "f32" ? view.getFloat32(4 * i, true)
                                : halfToFloat(view.getUint16(2 * i, true));
    return out;
}

function halfToFloat(h) {
    const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
    if (exp === 0) return sign * frac * 2 ** -24;
    if (exp === 31) return frac ? NaN : sign * Infinity;
    return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}
