#!/bin/sh
# test_model_2b4t.sh - a synthetic model with exactly the layout of microsoft's
# bitnet-b1.58-2B-4T I2_S GGUF (the keys, their types and order, and the tensor names,
# types and shapes as that file's loader logs list them) passes `bitnet info` and
# round-trips through our reader and writer unchanged. Slow: writes 2 x 1.2 GB.
set -u
BITNET=${BITNET:?set BITNET to the program}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
check() {
    if [ "$1" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $2" >&2; fi
}

"$BITNET" synth "$tmp/a.gguf" --preset 2b-4t
check $? "synth --preset 2b-4t"
"$BITNET" info --json "$tmp/a.gguf" > "$tmp/info.json"
check $? "info --json"
python3 - "$tmp/info.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
# microsoft/bitnet-b1.58-2B-4T ggml-model-i2_s.gguf: its 24 keys in order, with types
want = [
    ("general.architecture", "string"), ("general.name", "string"),
    ("bitnet-b1.58.vocab_size", "uint32"), ("bitnet-b1.58.context_length", "uint32"),
    ("bitnet-b1.58.embedding_length", "uint32"), ("bitnet-b1.58.block_count", "uint32"),
    ("bitnet-b1.58.feed_forward_length", "uint32"),
    ("bitnet-b1.58.rope.dimension_count", "uint32"),
    ("bitnet-b1.58.attention.head_count", "uint32"),
    ("bitnet-b1.58.attention.head_count_kv", "uint32"),
    ("tokenizer.ggml.add_bos_token", "bool"),
    ("bitnet-b1.58.attention.layer_norm_rms_epsilon", "float32"),
    ("bitnet-b1.58.rope.freq_base", "float32"), ("general.file_type", "uint32"),
    ("tokenizer.ggml.model", "string"), ("tokenizer.ggml.tokens", "array[string]"),
    ("tokenizer.ggml.scores", "array[float32]"), ("tokenizer.ggml.token_type", "array[int32]"),
    ("tokenizer.ggml.merges", "array[string]"), ("tokenizer.ggml.bos_token_id", "uint32"),
    ("tokenizer.ggml.eos_token_id", "uint32"), ("tokenizer.ggml.padding_token_id", "uint32"),
    ("tokenizer.chat_template", "string"), ("general.quantization_version", "uint32"),
]
got = [(m["key"], m["type"]) for m in d["metadata"]]
assert got == want, f"metadata keys differ: {got}"
kv = {m["key"]: m for m in d["metadata"]}
values = {"bitnet-b1.58.vocab_size": 128256, "bitnet-b1.58.context_length": 4096,
          "bitnet-b1.58.embedding_length": 2560, "bitnet-b1.58.block_count": 30,
          "bitnet-b1.58.feed_forward_length": 6912, "bitnet-b1.58.rope.dimension_count": 128,
          "bitnet-b1.58.attention.head_count": 20, "bitnet-b1.58.attention.head_count_kv": 5,
          "general.file_type": 40, "tokenizer.ggml.bos_token_id": 128000,
          "tokenizer.ggml.eos_token_id": 128001, "general.quantization_version": 2}
for k, v in values.items():
    assert kv[k]["value"] == v, (k, kv[k]["value"])
assert kv["tokenizer.ggml.tokens"]["n"] == 128256 and kv["tokenizer.ggml.merges"]["n"] == 280147
assert abs(kv["bitnet-b1.58.rope.freq_base"]["value"] - 500000.0) < 1e-3
t = {x["name"]: x for x in d["tensors"]}
assert len(d["tensors"]) == 332, len(d["tensors"])
types = {}
for x in d["tensors"]:
    types[x["type"]] = types.get(x["type"], 0) + 1
assert types == {"f32": 121, "f16": 1, "i2_s": 210}, types
shapes = {"attn_norm": ([2560], "f32"), "attn_sub_norm": ([2560], "f32"),
          "ffn_norm": ([2560], "f32"), "ffn_sub_norm": ([6912], "f32"),
          "attn_q": ([2560, 2560], "i2_s"), "attn_output": ([2560, 2560], "i2_s"),
          "attn_k": ([2560, 640], "i2_s"), "attn_v": ([2560, 640], "i2_s"),
          "ffn_gate": ([2560, 6912], "i2_s"), "ffn_up": ([2560, 6912], "i2_s"),
          "ffn_down": ([6912, 2560], "i2_s")}
for layer in range(30):
    for part, (shape, ty) in shapes.items():
        x = t[f"blk.{layer}.{part}.weight"]
        assert x["shape"] == shape and x["type"] == ty, x
assert t["token_embd.weight"]["shape"] == [2560, 128256] and t["token_embd.weight"]["type"] == "f16"
assert t["output_norm.weight"]["shape"] == [2560] and "output.weight" not in t
# byte sizes of the loader log: 1.098 GiB in all; I2_S = n/4 + 32
assert t["blk.0.attn_q.weight"]["bytes"] == 1638432 and t["blk.0.attn_k.weight"]["bytes"] == 409632
assert t["blk.0.ffn_down.weight"]["bytes"] == 4423712
assert sum(x["bytes"] for x in d["tensors"]) == 1179449920
PY
check $? "layout of the 2B-4T file"
# nothing to convert (the projections are i2_s already): the rewrite must be identical
"$BITNET" quantize -q "$tmp/a.gguf" "$tmp/b.gguf" --type i2_s 2> /dev/null
check $? "quantize to i2_s"
cmp -s "$tmp/a.gguf" "$tmp/b.gguf"
check $? "read + write round trip is byte-identical"
rm -f "$tmp/b.gguf"

# memory_check LOG CONVERTED: the peak RSS that /usr/bin/time -v wrote to LOG stays
# within the mapped file + KV cache + buffers + 64 MB that generate reported there; and
# when CONVERTED > 0, generate reported that many bytes converted at load (within 0.1 MB)
memory_check() {
    python3 - "$1" "$2" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
converted = int(sys.argv[2])
unit = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}
def size(label):
    m = re.search(label + r" ([0-9.]+) (B|kB|MB|GB)", t)
    return float(m.group(1)) * unit[m.group(2)]
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) * 1024
if converted:
    assert abs(size("converted at load") - converted) < 1e5, size("converted at load")
budget = size("model file") + size("KV cache") + size("buffers") + 64e6
print("  peak RSS %.0f MB; file + KV + buffers + 64 MB = %.0f MB" % (rss / 1e6, budget / 1e6))
assert rss <= budget, (rss, budget)
PY
}

# it runs: load, a short prompt and 8 greedy tokens; the figures go to the log, and the
# peak memory must stay within the mapped file + KV cache + buffers + 64 MB
/usr/bin/time -v "$BITNET" generate -m "$tmp/a.gguf" -p "the quick brown fox jumps over" \
    -n 8 --temp 0 --ignore-eos -c 512 -t 2 > "$tmp/gen.out" 2> "$tmp/gen.err"
check $? "generate with the 2B-4T layout"
sed 's/^/  /' "$tmp/gen.err" | grep -E "load:|prompt:|generation:|memory:|Maximum resident|Elapsed" 
grep -q "generation: 8 tokens" "$tmp/gen.err"
check $? "8 tokens generated"
memory_check "$tmp/gen.err" 0
check $? "peak memory within file + KV cache + buffers + 64 MB"
# by default a 1.2 GB file is read into memory where the kernel gives transparent huge
# pages for the asking (and there is room), and mapped where it does not
thp=$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)
avail=$(($(awk '/^MemAvailable:/ {print $2}' /proc/meminfo) * 1024))
case "$thp" in
*"[always]"*|*"[madvise]"*) [ "$avail" -ge $((2 * $(stat -c %s "$tmp/a.gguf"))) ] && want="read into memory" ;;
esac
grep -q "model file .* (${want:-mapped}" "$tmp/gen.err"
check $? "the weights ${want:-mapped} (transparent_hugepage: ${thp:-absent})"
/usr/bin/time -v "$BITNET" generate -m "$tmp/a.gguf" -p "the quick brown fox jumps over" \
    -n 8 --temp 0 --ignore-eos -c 512 -t 2 --mmap > "$tmp/map.out" 2> "$tmp/map.err"
check $? "generate with --mmap"
cmp -s "$tmp/gen.out" "$tmp/map.out" && grep -q "model file .* (mapped)" "$tmp/map.err"
check $? "--mmap: mapped, the same text"
memory_check "$tmp/map.err" 0
check $? "--mmap: peak memory within file + KV cache + buffers + 64 MB"

# the output layer kept in q8_0: converted at load (349 MB), the f16 embedding's pages
# of the file dropped afterwards, so the peak stays within the same budget
/usr/bin/time -v "$BITNET" generate -m "$tmp/a.gguf" -p "the quick brown fox jumps over" \
    -n 8 --temp 0 --ignore-eos -c 512 -t 2 --lm-head q8_0 > "$tmp/gen.out" 2> "$tmp/gen.err"
check $? "generate with --lm-head q8_0"
sed 's/^/  /' "$tmp/gen.err" | grep -E "load:|generation:|memory:|Maximum resident"
memory_check "$tmp/gen.err" $((128256 * 2560 / 32 * 34))
check $? "--lm-head q8_0: 349 MB converted, peak memory within the same budget"
echo "test_model_2b4t: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
