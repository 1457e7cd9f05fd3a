// rename_arch.mjs - copies a GGUF file written by `bitnet synth`, renaming its
// architecture: the value of general.architecture and the prefix of every key that
// starts with "<old>." become the new name. Nothing else changes: every other byte of
// the header and the tensor data are copied as written, the data start re-padded to
// the file's alignment (tensor offsets are relative to it, so they stay valid).
//
// llama.cpp knows BitNet b1.58 as architecture "bitnet"; bitnet.cpp and our writer
// call it "bitnet-b1.58". This is the one change that lets llama.cpp load our files.
//
//   node rename_arch.mjs IN.gguf OUT.gguf [NEW_ARCH]      (default "bitnet")
import { openSync, readSync, writeSync, closeSync, fstatSync } from "node:fs";

// Bytes of one scalar of each GGUF value type (string and array are walked).
const SCALAR_BYTES = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
const T_STRING = 8, T_ARRAY = 9;

// Reads GGUF header pieces from a buffer, keeping the byte range of each.
class HeaderCursor {
    constructor(buf) { this.buf = buf; this.pos = 0; }
    u32() { const v = this.buf.readUInt32LE(this.pos); this.pos += 4; return v; }
    u64() {
        const v = this.buf.readBigUInt64LE(this.pos);
        this.pos += 8;
        if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`count ${v} too large`);
        return Number(v);
    }
    str() {
        const n = this.u64();
        if (this.pos + n > this.buf.length)
            throw new RangeError("string runs past the buffer");
        const s = this.buf.toString("utf8", this.pos, this.pos + n);
        this.pos += n;
        return s;
    }
    // Skips a value of `type`, returning its bytes.
    value(type) {
        const start = this.pos;
        if (type === T_STRING) {
            this.str();
        } else if (type === T_ARRAY) {
            const elem = this.u32(), n = this.u64();
            for (let i = 0; i < n; i++) this.value(elem);
        } else if (type in SCALAR_BYTES) {
            this.pos += SCALAR_BYTES[type];
        } else {
            throw new Error(`unknown value type ${type} at byte ${start}`);
        }
        return this.buf.subarray(start, this.pos);
    }
}

function ggufString(s) {
    const bytes = Buffer.from(s, "utf8");
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(bytes.length));
    return Buffer.concat([len, bytes]);
}

// The renamed header of a GGUF image whose first bytes are `buf`, padded to the
// alignment, and the file offset where the tensor data starts. Throws a RangeError when
// `buf` ends inside the header.
function renameHeader(buf, newArch) {
    const c = new HeaderCursor(buf);
    if (buf.toString("latin1", 0, 4) !== "GGUF") throw new Error("not a GGUF file");
    c.pos = 4;
    const version = c.u32();
    if (version !== 3) throw new Error(`GGUF version ${version}, expected 3`);
    const nTensors = c.u64(), nKv = c.u64();
    const prelude = buf.subarray(0, c.pos);
    const kvs = [];
    let oldArch = null, alignment = 32;
    for (let i = 0; i < nKv; i++) {
        const key = c.str(), type = c.u32();
        const valueStart = c.pos;
        const raw = c.value(type);
        if (key === "general.architecture") {
            const v = new HeaderCursor(buf);
            v.pos = valueStart;
            oldArch = v.str();
        }
        if (key === "general.alignment") alignment = buf.readUInt32LE(valueStart);
        kvs.push({ key, type, raw });
    }
    if (oldArch === null) throw new Error("no general.architecture");
    const tensorInfoStart = c.pos;
    for (let i = 0; i < nTensors; i++) {
        c.str();
        const nDims = c.u32();
        c.pos += 8 * nDims + 4 + 8;  // dims, type, offset
    }
    if (c.pos > buf.length) throw new RangeError("header runs past the buffer");
    const tensorInfos = buf.subarray(tensorInfoStart, c.pos);
    const dataStart = Math.ceil(c.pos / alignment) * alignment;

    const parts = [prelude];
    for (const kv of kvs) {
        const key = kv.key.startsWith(oldArch + ".") ? newArch + kv.key.slice(oldArch.length)
                                                     : kv.key;
        const typeBytes = Buffer.alloc(4);
        typeBytes.writeUInt32LE(kv.type);
        const raw = kv.key === "general.architecture" ? ggufString(newArch) : kv.raw;
        parts.push(ggufString(key), typeBytes, raw);
    }
    parts.push(tensorInfos);
    const header = Buffer.concat(parts);
    const pad = Math.ceil(header.length / alignment) * alignment - header.length;
    return { header: Buffer.concat([header, Buffer.alloc(pad)]), dataStart };
}

// Writes `output`: `input` with its architecture renamed to `newArch`. Reads as much
// of the head of the file as the header needs, then copies the data in chunks.
export function renameArch(input, output, newArch = "bitnet") {
    const fin = openSync(input, "r");
    const size = fstatSync(fin).size;
    let renamed = null;
    for (let want = 1 << 20; !renamed; want *= 4) {
        const head = Buffer.alloc(Math.min(want, size));
        readSync(fin, head, 0, head.length, 0);
        try {
            renamed = renameHeader(head, newArch);
        } catch (e) {
            if (!(e instanceof RangeError) || head.length === size) throw e;
        }
    }
    const fout = openSync(output, "w");
    writeSync(fout, renamed.header);
    const chunk = Buffer.alloc(16 << 20);
    for (let at = renamed.dataStart; at < size;) {
        const n = readSync(fin, chunk, 0, Math.min(chunk.length, size - at), at);
        writeSync(fout, chunk, 0, n);
        at += n;
    }
    closeSync(fout);
    closeSync(fin);
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
    const [input, output, arch] = process.argv.slice(2);
    if (!input || !output) {
        console.error("usage: node rename_arch.mjs IN.gguf OUT.gguf [NEW_ARCH]");
        process.exit(2);
    }
    renameArch(input, output, arch || "bitnet");
}
