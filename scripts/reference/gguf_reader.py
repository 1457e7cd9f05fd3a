"""gguf_reader.py - a small GGUF reader (numpy only), written from the GGUF spec and the
layouts in docs/FORMATS.md, independent of libbitnet's C reader.

It reads the header (metadata and tensor descriptions) of a GGUF v2/v3 file and
dequantizes tensors to float32 numpy arrays. Shapes follow GGUF's order of `ne`:
ne[0] is the row length, so a 2-D weight with ne [in, out] comes back as a numpy
array of shape (out, in) (out rows of `in` columns), i.e. numpy shape = reversed(ne).

Types read: F32 (0), F16 (1), Q8_0 (8), BF16 (30), TQ1_0 (34), TQ2_0 (35), I2_S (36).
For the ternary types, `ternary_codes()` also gives the integer codes and their scales,
so that a caller can do exact integer dot products.

    r = GGUFReader("model.gguf")
    r.metadata["general.architecture"]      # -> "bitnet-b1.58"
    w = r.tensor("blk.0.attn_q.weight")     # float32, shape (out, in)

Run as a script it prints the metadata (arrays abridged) and the tensor list.
"""
import struct
import sys

import numpy as np

GGUF_MAGIC = b"GGUF"

# metadata value types: id -> (struct format, bytes)
_SCALARS = {0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4),
            5: ("<i", 4), 6: ("<f", 4), 7: ("<?", 1), 10: ("<Q", 8), 11: ("<q", 8),
            12: ("<d", 8)}
_NP_SCALARS = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4",
               7: "<u1", 10: "<u8", 11: "<i8", 12: "<f8"}
T_STRING, T_ARRAY = 8, 9

# ggml tensor types: id -> (name, block size in weights, bytes per block)
F32, F16, Q8_0, BF16, TQ1_0, TQ2_0, I2_S = 0, 1, 8, 30, 34, 35, 36
TYPES = {F32: ("F32", 1, 4), F16: ("F16", 1, 2), Q8_0: ("Q8_0", 32, 34),
         BF16: ("BF16", 1, 2), TQ1_0: ("TQ1_0", 256, 54), TQ2_0: ("TQ2_0", 256, 66),
         I2_S: ("I2_S", 128, 32)}


class GGUFError(Exception):
    pass


class TensorInfo:
    """One tensor's description: name, ne (GGUF order), type id, byte range."""

    def __init__(self, name, ne, type_id, offset):
        self.name, self.ne, self.type, self.offset = name, ne, type_id, offset
        self.n = int(np.prod(ne, dtype=np.int64)) if ne else 1
        self.nbytes = None   # filled once the data start is known
        self.data_offset = None

    @property
    def shape(self):
        """numpy shape: reversed ne (rows last in ne, first here)."""
        return tuple(reversed(self.ne))

    def type_name(self):
        return TYPES.get(self.type, ("type%d" % self.type,))[0]


def tensor_nbytes(type_id, ne):
    """Bytes of a tensor of this type and shape; GGUFError for unknown types."""
    if type_id not in TYPES:
        raise GGUFError("unsupported tensor type %d" % type_id)
    _, block, size = TYPES[type_id]
    n = int(np.prod(ne, dtype=np.int64)) if ne else 1
    if type_id == I2_S:  # one stream over the whole tensor, then a 32-byte tail
        if n % 128:
            raise GGUFError("I2_S tensor of %d weights (not a multiple of 128)" % n)
        return n // 4 + 32
    if ne[0] % block:
        raise GGUFError("row length %d not a multiple of block %d" % (ne[0], block))
    return n // block * size


class GGUFReader:
    """Reads a whole GGUF file into memory (np.memmap) and parses its header."""

    def __init__(self, path):
        self.path = path
        self.buf = np.memmap(path, dtype=np.uint8, mode="r")
        self.pos = 0
        if bytes(self.buf[:4]) != GGUF_MAGIC:
            raise GGUFError("%s: not a GGUF file" % path)
        self.pos = 4
        self.version = self._u32()
        if self.version not in (2, 3):
            raise GGUFError("GGUF version %d not supported (2 or 3)" % self.version)
        n_tensors, n_kv = self._u64(), self._u64()
        self.metadata = {}
        self.metadata_types = {}
        for _ in range(n_kv):
            key = self._str()
            vtype = self._u32()
            self.metadata_types[key] = vtype
            self.metadata[key] = self._value(vtype)
        self.tensors = {}
        for _ in range(n_tensors):
            name = self._str()
            n_dims = self._u32()
            if n_dims > 4:
                raise GGUFError("tensor %s: %d dimensions" % (name, n_dims))
            ne = [self._u64() for _ in range(n_dims)]
            type_id, offset = self._u32(), self._u64()
            self.tensors[name] = TensorInfo(name, ne, type_id, offset)
        align = int(self.metadata.get("general.alignment", 32))
        self.data_start = (self.pos + align - 1) // align * align
        for t in self.tensors.values():
            t.data_offset = self.data_start + t.offset
            if t.type in TYPES:
                t.nbytes = tensor_nbytes(t.type, t.ne)
                if t.data_offset + t.nbytes > len(self.buf):
                    raise GGUFError("tensor %s runs past the end of the file" % t.name)

    # --- header primitives (each checks that the bytes exist)
    def _take(self, n):
        if self.pos + n > len(self.buf):
            raise GGUFError("header runs past the end of the file")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def _u32(self):
        return struct.unpack("<I", bytes(self._take(4)))[0]

    def _u64(self):
        return struct.unpack("<Q", bytes(self._take(8)))[0]

    def _str(self):
        return bytes(self._take(self._u64())).decode("utf-8", errors="replace")

    def _value(self, vtype):
        if vtype in _SCALARS:
            fmt, n = _SCALARS[vtype]
            return struct.unpack(fmt, bytes(self._take(n)))[0]
        if vtype == T_STRING:
            return self._str()
        if vtype == T_ARRAY:
            etype, count = self._u32(), self._u64()
            if etype in _NP_SCALARS:  # numeric arrays in one read
                size = _SCALARS[etype][1]
                return np.frombuffer(bytes(self._take(size * count)), dtype=_NP_SCALARS[etype])
            return [self._value(etype) for _ in range(count)]
        raise GGUFError("unknown metadata value type %d" % vtype)

    # --- tensors
    def raw(self, name):
        """The tensor's bytes as a uint8 array."""
        t = self.tensors[name]
        if t.nbytes is None:
            raise GGUFError("tensor %s: unsupported type %d" % (name, t.type))
        return np.asarray(self.buf[t.data_offset:t.data_offset + t.nbytes])

    def tensor(self, name):
        """The tensor dequantized to float32, numpy shape reversed(ne)."""
        t = self.tensors[name]
        return dequantize(t.type, self.raw(name), t.n).reshape(t.shape)

    def ternary_codes(self, name):
        """For a TQ1_0 / TQ2_0 / I2_S tensor: (codes, scales, block) with codes int8 in
        {-1, 0, 1} of numpy shape reversed(ne) and scales float32 of shape
        (rows, row_len / block) (block = 256) or a 0-d array for I2_S's one scale
        (block = None). Value = codes * scale of the weight's block."""
        t = self.tensors[name]
        raw = self.raw(name)
        if t.type == I2_S:
            codes, scale = _i2_s_codes(raw, t.n)
            return codes.reshape(t.shape), np.float32(scale), None
        if t.type in (TQ1_0, TQ2_0):
            fn = _tq1_0_codes if t.type == TQ1_0 else _tq2_0_codes
            codes, d = fn(raw, t.n)
            rows = t.n // t.ne[0]
            return codes.reshape(t.shape), d.reshape(rows, t.ne[0] // 256), 256
        raise GGUFError("tensor %s is %s, not a ternary type" % (name, t.type_name()))


# --- dequantizers: raw bytes -> codes / floats (flat, in element order)

def _i2_s_codes(raw, n):
    """I2_S: blocks of 128 weights in 32 bytes; byte j holds weights j, 32+j, 64+j,
    96+j in bits 7-6, 5-4, 3-2, 1-0; code = w + 1 (code 3, never written, reads as +2,
    as bitnet.cpp's kernels sum it: docs/FORMATS.md); one f32 scale in the first 4
    bytes of the 32-byte tail."""
    packed = raw[:n // 4].reshape(-1, 32)                      # (blocks, 32)
    shifts = np.array([6, 4, 2, 0], dtype=np.uint8)
    c = (packed[:, None, :] >> shifts[None, :, None]) & 3      # (blocks, 4, 32)
    codes = (c.astype(np.int8) - 1).reshape(-1)                # weight 32*l + j
    scale = np.frombuffer(bytes(raw[n // 4:n // 4 + 4]), dtype="<f4")[0]
    return codes, scale


def _tq2_0_codes(raw, n):
    """TQ2_0: 256 weights in 66 bytes: qs[64], fp16 d. Two halves of 32 bytes; byte m
    of half h holds weights 128h + m + 32l in bits 2l+1..2l (l = 0..3)."""
    blocks = raw.reshape(-1, 66)
    qs = blocks[:, :64].reshape(-1, 2, 32)                     # (b, half, m)
    shifts = np.array([0, 2, 4, 6], dtype=np.uint8)
    c = (qs[:, :, None, :] >> shifts[None, None, :, None]) & 3  # (b, half, l, m)
    codes = (c.astype(np.int8) - 1).reshape(-1)
    d = blocks[:, 64:66].copy().view("<f2").astype(np.float32).reshape(-1)
    return codes, d


def _tq1_0_codes(raw, n):
    """TQ1_0: 256 weights in 54 bytes: qs[48], qh[4], fp16 d. Five trits per byte,
    stored as ceil(n*256/243); trit k is ((b * 3^k) mod 256) * 3 >> 8. qs[0..31]:
    weight 32k+m; qs[32..47]: 160+16k+m; qh[0..3]: 240+4k+j (k < 4)."""
    blocks = raw.reshape(-1, 54).astype(np.uint32)
    pow3 = np.array([1, 3, 9, 27, 81], dtype=np.uint32)

    def trits(b, k_count):  # b (blocks, m) -> (blocks, k, m)
        t = (b[:, None, :] * pow3[None, :k_count, None]) & 255
        return ((t * 3) >> 8).astype(np.int8)

    part1 = trits(blocks[:, 0:32], 5).reshape(-1, 160)    # index 32k+m
    part2 = trits(blocks[:, 32:48], 5).reshape(-1, 80)    # index 16k+m
    part3 = trits(blocks[:, 48:52], 4).reshape(-1, 16)    # index 4k+j
    codes = (np.concatenate([part1, part2, part3], axis=1) - 1).reshape(-1)
    d = blocks[:, 52:54].astype(np.uint8).copy().view("<f2").astype(np.float32).reshape(-1)
    return codes, d


def dequantize(type_id, raw, n):
    """Flat float32 array of the n values stored in `raw` (uint8) as `type_id`."""
    raw = np.ascontiguousarray(raw)
    if type_id == F32:
        return raw.view("<f4").astype(np.float32)
    if type_id == F16:
        return raw.view("<f2").astype(np.float32)
    if type_id == BF16:
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    if type_id == Q8_0:
        blocks = raw.reshape(-1, 34)
        d = blocks[:, :2].copy().view("<f2").astype(np.float32)
        q = blocks[:, 2:].view(np.int8).astype(np.float32)
        return (d * q).reshape(-1)
    if type_id == I2_S:
        codes, scale = _i2_s_codes(raw, n)
        return codes.astype(np.float32) * np.float32(scale)
    if type_id in (TQ1_0, TQ2_0):
        fn = _tq1_0_codes if type_id == TQ1_0 else _tq2_0_codes
        codes, d = fn(raw, n)
        return (codes.reshape(-1, 256).astype(np.float32) * d[:, None]).reshape(-1)
    raise GGUFError("cannot dequantize type %d" % type_id)


def _main(argv):
    if len(argv) != 2:
        print("usage: gguf_reader.py FILE.gguf", file=sys.stderr)
        return 2
    r = GGUFReader(argv[1])
    print("GGUF v%d, %d keys, %d tensors, data at %d" %
          (r.version, len(r.metadata), len(r.tensors), r.data_start))
    for k, v in r.metadata.items():
        if isinstance(v, (list, np.ndarray)) and len(v) > 4:
            v = "[%s, ... %d items]" % (", ".join(repr(x) for x in list(v[:3])), len(v))
        print("  %s = %s" % (k, v))
    for t in r.tensors.values():
        x = r.tensor(t.name)
        print("  %-28s %-6s ne=%-14s mean|x|=%.5g" %
              (t.name, t.type_name(), t.ne, float(np.abs(x).mean())))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
