#!/bin/sh
# test_cli.sh - drives the bitnet program as a user would: help, version, info,
# and every kind of bad usage (clear message on stderr, exit code 2).
set -u
BITNET=${BITNET:?set BITNET to the program}
passed=0
failed=0
out=$(mktemp)
err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT

# expect CODE DESCRIPTION -- ARGS...: runs the program, checks the exit code
expect() {
    code=$1; what=$2; shift 3
    "$BITNET" "$@" >"$out" 2>"$err" </dev/null
    rc=$?
    if [ "$rc" -eq "$code" ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $what: 'bitnet $*' exited $rc, expected $code" >&2
        sed 's/^/  stderr: /' "$err" >&2
    fi
}

# grep_in FILE PATTERN DESCRIPTION
grep_in() {
    if grep -q -- "$2" "$1"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $3: no '$2' in:" >&2
        sed 's/^/  | /' "$1" >&2
    fi
}

expect 0 "--help" -- --help
grep_in "$out" "usage: bitnet" "--help shows usage"
grep_in "$out" "info" "--help lists commands"
expect 0 "help info" -- help info
grep_in "$out" "usage: bitnet info" "help for info"
expect 0 "info --help" -- info --help
grep_in "$out" "--system" "info help names --system"
expect 0 "--version" -- --version
version=$(sed -n 's/^#define BITNET_VERSION_MAJOR \([0-9]*\)$/\1/p' "$(dirname "$0")/../include/bitnet.h")
grep_in "$out" "^bitnet $version\." "version printed"
expect 0 "version command" -- version

expect 0 "info --system" -- info --system
grep_in "$out" "^cpu:" "cpu line"
grep_in "$out" "^kernels:" "kernels line"
grep_in "$out" "^devices:  *cpu" "devices line"
ncpu=$(getconf _NPROCESSORS_ONLN)
grep_in "$out" "^cores: *$ncpu logical" "core count matches getconf"
grep_in "$out" "^threads: *$ncpu\$" "default threads = online CPUs"
expect 0 "-t 3" -- -t 3 info --system
grep_in "$out" "^threads: *3\$" "-t sets the thread count"
BITNET_THREADS=5 "$BITNET" info --system >"$out" 2>"$err"
grep_in "$out" "^threads: *5\$" "BITNET_THREADS sets the thread count"
if grep -q ' avx2' /proc/cpuinfo 2>/dev/null; then
    grep_in "$out" "^features:.* avx2" "avx2 reported where /proc/cpuinfo has it"
fi
BITNET_KERNELS=scalar "$BITNET" info --system >"$out" 2>"$err"
grep_in "$out" "^kernels: *scalar" "BITNET_KERNELS=scalar forces scalar kernels"
BITNET_KERNELS=SCALAR "$BITNET" info --system >"$out" 2>"$err"
grep_in "$out" "^kernels: *scalar" "BITNET_KERNELS is matched in any case"
# (where the build and the CPU run them)
if BITNET_KERNELS=avx2 "$BITNET" info --system 2>/dev/null | grep -q "^kernels: *avx2"; then
    BITNET_KERNELS=Avx2 "$BITNET" info --system >"$out" 2>"$err"
    grep_in "$out" "^kernels: *avx2" "BITNET_KERNELS=Avx2 runs the AVX2 kernels"
fi
# an unknown family is refused, with the valid names, never run as scalar
BITNET_KERNELS=avx9 "$BITNET" info --system >"$out" 2>"$err"
rc=$?
if [ "$rc" -eq 2 ]; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "FAIL: BITNET_KERNELS=avx9 exited $rc, expected 2" >&2; fi
grep_in "$err" "BITNET_KERNELS=avx9: no such kernel family.*valid: scalar" \
    "an unknown BITNET_KERNELS names the valid families"

expect 2 "no command" --
grep_in "$err" "usage: bitnet" "usage on stderr without a command"
expect 2 "unknown command" -- frobnicate
grep_in "$err" "unknown command 'frobnicate'" "names the unknown command"
expect 2 "unknown global option" -- --frob
grep_in "$err" "unknown option '--frob'" "names the unknown option"
expect 2 "unknown info option" -- info --frob
grep_in "$err" "unknown option '--frob'" "info names the unknown option"
expect 2 "bad thread count" -- -t zero info --system
grep_in "$err" "invalid thread count 'zero'" "names the bad count"
expect 2 "missing thread count" -- -t
expect 2 "thread count too large" -- -t 100000 info --system
expect 2 "info with nothing" -- info
grep_in "$err" "GGUF file" "says what info wants"
expect 2 "help for unknown command" -- help frobnicate

# --- model files: synthetic models, info, quantize round trips
tmp=$(mktemp -d)
trap 'rm -rf "$out" "$err" "$tmp"' EXIT
expect 0 "synth tiny" -- synth "$tmp/m.gguf" --seed 7
expect 0 "info on a file" -- info "$tmp/m.gguf"
grep_in "$out" "^metadata: *24 keys" "24 metadata keys"
grep_in "$out" "^tensors: *24 " "24 tensors"
grep_in "$out" "general.architecture .*\"bitnet-b1.58\"" "architecture shown"
grep_in "$out" "tokenizer.ggml.tokens .*(512) \[\"Ā\", \"ā\", .*504 more\]" "long arrays shortened"
grep_in "$out" "blk.1.ffn_down.weight *i2_s *768 x 256 *49184 " "tensor row: type, shape, bytes"
expect 0 "info --json" -- info --json "$tmp/m.gguf"
if python3 - "$out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
kv = {m["key"]: m for m in d["metadata"]}
assert d["version"] == 3 and len(d["metadata"]) == 24 and len(d["tensors"]) == 24
assert kv["bitnet-b1.58.block_count"]["value"] == 2
assert kv["bitnet-b1.58.block_count"]["type"] == "uint32"
assert kv["tokenizer.ggml.tokens"]["n"] == 512 and kv["tokenizer.ggml.tokens"]["truncated"]
t = {x["name"]: x for x in d["tensors"]}
assert t["blk.0.attn_k.weight"]["shape"] == [256, 128]
assert t["blk.0.attn_k.weight"]["type"] == "i2_s" and t["blk.0.attn_k.weight"]["type_id"] == 36
assert t["token_embd.weight"]["bytes"] == 256 * 512 * 2
PY
then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: info --json content" >&2; fi

# i2_s -> tq2_0 -> tq1_0 -> i2_s gives back the same file, byte for byte
expect 0 "quantize to tq2_0" -- quantize -q "$tmp/m.gguf" "$tmp/tq2.gguf" --type tq2_0
expect 0 "info tq2_0" -- info "$tmp/tq2.gguf"
grep_in "$out" "blk.0.attn_q.weight *tq2_0 *256 x 256 *16896 " "projections now tq2_0"
grep_in "$out" "token_embd.weight *f16 " "embedding kept f16"
expect 0 "quantize to tq1_0" -- quantize -q "$tmp/tq2.gguf" "$tmp/tq1.gguf" --type tq1_0
expect 0 "quantize back to i2_s" -- quantize -q "$tmp/tq1.gguf" "$tmp/back.gguf" --type i2_s
if cmp -s "$tmp/m.gguf" "$tmp/back.gguf"; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "FAIL: i2_s -> tq2_0 -> tq1_0 -> i2_s changed the file" >&2; fi
# float weights go through absmean ternarization; overrides and --stats
expect 0 "quantize with overrides and stats" -- quantize -q "$tmp/m.gguf" "$tmp/o.gguf" \
    --type tq2_0 --tensor-type 'token_embd.weight=i2_s' --tensor-type 'blk.1.*=keep' --stats
grep_in "$out" "^token_embd.weight *i2_s .* [0-9.]* *[0-9.]*%" "stats row for the embedding"
grep_in "$out" "^overall" "overall stats"
expect 0 "info after overrides" -- info "$tmp/o.gguf"
grep_in "$out" "token_embd.weight *i2_s " "override applied"
grep_in "$out" "blk.1.attn_q.weight *i2_s " "keep applied"
grep_in "$out" "blk.0.attn_q.weight *tq2_0 " "default applied"

expect 2 "quantize without --type" -- quantize "$tmp/m.gguf" "$tmp/x.gguf"
grep_in "$err" "--type" "asks for --type"
expect 2 "quantize bad type" -- quantize "$tmp/m.gguf" "$tmp/x.gguf" --type q9_9
expect 2 "quantize bad rule" -- quantize "$tmp/m.gguf" "$tmp/x.gguf" --tensor-type nope
expect 2 "quantize onto its input" -- quantize "$tmp/m.gguf" "$tmp/m.gguf" --type tq2_0
grep_in "$err" "overwrite the input" "refuses to overwrite the input"
expect 2 "per-channel i2_s refused" -- quantize -q "$tmp/m.gguf" "$tmp/x.gguf" --type tq2_0 \
    --tensor-type 'token_embd.weight=i2_s' --per-channel
grep_in "$err" "i2_s (token_embd.weight) holds one scale per tensor" "says why"
expect 1 "quantize a missing file" -- quantize "$tmp/none.gguf" "$tmp/x.gguf" --type tq2_0
grep_in "$err" "none.gguf" "names the missing file"
expect 1 "quantize into a missing directory" -- quantize -q "$tmp/m.gguf" "$tmp/no/x.gguf" --type tq2_0
if [ ! -e "$tmp/x.gguf" ] && [ -z "$(ls "$tmp" | grep tmp)" ]; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "FAIL: a failed quantize left files behind" >&2; fi
# a file with bad values and an odd row length: refused with the tensor named
python3 - "$tmp/bad.gguf" <<'PY'
import struct, sys
def s(x): b = x.encode(); return struct.pack("<Q", len(b)) + b
tensors = [("blk.0.attn_q.weight", [256, 2]), ("blk.0.attn_k.weight", [300, 2])]
out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), 1)
out += s("general.architecture") + struct.pack("<I", 8) + s("bitnet-b1.58")
off = 0
for name, ne in tensors:
    out += s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
    out += struct.pack("<IQ", 0, off)
    off += (ne[0] * ne[1] * 4 + 31) // 32 * 32
out += b"\0" * ((32 - len(out) % 32) % 32)
vals = [0.5, -0.5, 0.0] * 200
vals[300] = float("nan")
out += struct.pack("<512f", *vals[:512])
out += struct.pack("<600f", *([0.25] * 600)) + b"\0" * 32
open(sys.argv[1], "wb").write(out)
PY
expect 1 "NaN refused" -- quantize -q "$tmp/bad.gguf" "$tmp/x.gguf" --type i2_s --tensor-type 'blk.0.attn_k.weight=keep'
grep_in "$err" "tensor 'blk.0.attn_q.weight' (256 x 2, f32): NaN at index 300 (row 1, column 44)" "names the tensor and the first bad index"
expect 1 "odd row length refused" -- quantize -q "$tmp/bad.gguf" "$tmp/x.gguf" --type tq2_0 --tensor-type 'blk.0.attn_q.weight=keep'
grep_in "$err" "tensor 'blk.0.attn_k.weight' (300 x 2, f32): tq2_0: row length 300 is not a multiple of the block size 256" "names the tensor, its shape and the block size"
if [ ! -e "$tmp/x.gguf" ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: partial output" >&2; fi
expect 1 "info on a non-GGUF file" -- info "$0"
grep_in "$err" "not a GGUF file" "says it is not GGUF"
expect 1 "info on a missing file" -- info "$tmp/none.gguf"
expect 2 "info with two files" -- info "$tmp/m.gguf" "$tmp/tq2.gguf"

echo "test_cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
