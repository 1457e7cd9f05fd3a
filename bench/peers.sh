#!/bin/sh
# bench/peers.sh - `bitnet bench` beside the two peer engines' `llama-bench`, in one run on
# one machine, on synthetic models with exactly the 2B-4T shapes (2560 wide, 30 layers,
# 20/5 heads, FFN 6912, vocab 128,256, tied embedding = lm_head, random ternary
# projections) written by `bitnet synth`:
#   - I2_S projections, arch bitnet-b1.58: ours and bitnet.cpp bench the very same file;
#   - TQ2_0 (and TQ1_0) projections, arch bitnet: ours and llama.cpp bench the same file;
#   each with the tied lm_head in F16 (the 2B-4T default) and in Q6_K; and ours on the
#   F16 files with the lm_head kept in Q8_0 at load time (`--lm-head q8_0`, rows
#   "ours, lm_head q8_0": 349 MB of Q8_0 read per token instead of 657 MB of F16); and,
#   where our kernels are the avx512 or amx family, ours on the F16 files with
#   BITNET_KERNELS=avx2 (rows "ours, avx2 kernels", with "ours / ours-avx2" ratios),
#   and where they are amx, with BITNET_KERNELS=avx512 as well ("ours, avx512
#   kernels", "ours / ours-avx512").
# Tests as llama-bench defines them: pp128 = one batch of 128 prompt tokens, tg64 = 64
# single-token decodes; the median of REPEAT samples (default 3) in tokens/s. Thread
# counts (THREADS, default "1 2") are interleaved: for each count, every engine and
# model in turn, each after a read-bandwidth measurement (`bitnet membw -t T --mib 512
# --repeat 3`, the best of its read methods); the count's bandwidth is the highest of
# these, so that a slow moment of a shared machine cannot lower the limit.
# "MB per token" is the sum of all tensor bytes (`bitnet info --json`): every weight is
# read once per decoded token, the tied embedding as lm_head. tg/limit divides tg64 by
# that count's decode limit (read bandwidth / bytes per token). The "ours / peer" rows
# divide our row by the peer's row on the same file. Absolute figures drift between
# runs: compare only within one run.
#
#   BITNET=build/bitnet LLAMA_CPP_BUILD=DIR BITNET_CPP_BUILD=DIR [MODELS=DIR] \
#       [THREADS="1 2"] sh bench/peers.sh [REPEAT]
#
# LLAMA_CPP_BUILD and BITNET_CPP_BUILD are the peers' CMake build directories (holding
# bin/llama-bench); a peer whose directory is not given is skipped, with a line saying
# so. MODELS is a cache directory for the model files (about 4.7 GB; made when missing,
# reused otherwise); without it they go to a temporary directory removed at exit.
#
# Getting and building the peers (anywhere outside the project; nothing of them is
# committed). Both peers are built with -march=native (GGML_NATIVE=ON): say so beside
# any comparison.
#   llama.cpp  upstream commit 84f712946729f8517c972da4eb80db810ffe3210; the same commit is
#              in the public mirror github.com/unslothai/llama.cpp (the upstream snapshot
#              is too large to fetch; a few large vocab files may be absent, unneeded):
#                git clone https://github.com/unslothai/llama.cpp /tmp/llama.cpp
#                git -C /tmp/llama.cpp checkout 84f712946729f8517c972da4eb80db810ffe3210
#                cmake -S /tmp/llama.cpp -B /tmp/llama.cpp/build -DCMAKE_BUILD_TYPE=Release \
#                    -DGGML_NATIVE=ON -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
#                    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
#                    -DLLAMA_BUILD_UI=OFF -DLLAMA_BUILD_APP=OFF
#                cmake --build /tmp/llama.cpp/build -j2 --target llama-bench llama-quantize
#              (LLAMA_CPP_BUILD=/tmp/llama.cpp/build). It loads `bitnet synth --arch
#              bitnet --type tq2_0|tq1_0` files as they are.
#   bitnet.cpp github.com/microsoft/BitNet at 1876a3e8895f5f88f976760fdbc588c1eafa2d48; its
#              3rdparty/llama.cpp submodule (Eddie-Wang1120/llama.cpp 1f86f058) is vendored
#              as plain files in github.com/ygqdan/BitNet-linux (3rdparty/llama.cpp):
#                git clone https://github.com/microsoft/BitNet /tmp/BitNet
#                git -C /tmp/BitNet checkout 1876a3e8895f5f88f976760fdbc588c1eafa2d48
#                git clone https://github.com/ygqdan/BitNet-linux /tmp/BitNet-linux
#                rm -rf /tmp/BitNet/3rdparty/llama.cpp
#                cp -r /tmp/BitNet-linux/3rdparty/llama.cpp /tmp/BitNet/3rdparty/
#              The vendored copy lacks common/cmake/build-info-gen-cpp.cmake, which the
#              build-info step runs: take it from OpenDarrenlu/BitNet-llama.cpp
#              (common/cmake/), or from upstream llama.cpp of that time (commit c33fe8b8c,
#              the parent of 09cf2c7c6; the file is the same 24-line script):
#                mkdir -p /tmp/BitNet/3rdparty/llama.cpp/common/cmake
#                git -C /tmp/llama.cpp show c33fe8b8c:common/cmake/build-info-gen-cpp.cmake \
#                    > /tmp/BitNet/3rdparty/llama.cpp/common/cmake/build-info-gen-cpp.cmake
#              clang 14 rejects src/ggml-bitnet-mad.cpp line 811 (a const int8_t *
#              assigned to int8_t *): make it `const int8_t * y_col = y + col * by;`.
#              Then generate the header its CMake lists (TL2 kernels, unused) and build
#              with clang:
#                cd /tmp/BitNet && python3 utils/codegen_tl2.py --model bitnet_b1_58-3B \
#                    --BM 160,320,320 --BK 96,96,96 --bm 32,32,32
#                CC=clang CXX=clang++ cmake -S /tmp/BitNet -B /tmp/BitNet/build \
#                    -DCMAKE_BUILD_TYPE=Release -DBITNET_X86_TL2=OFF -DGGML_NATIVE=ON \
#                    -DLLAMA_BUILD_TESTS=OFF
#                cmake --build /tmp/BitNet/build -j2 --target llama-bench llama-quantize
#              (BITNET_CPP_BUILD=/tmp/BitNet/build). It loads `bitnet synth --arch
#              bitnet-b1.58 --type i2_s` files as they are.
set -eu
BITNET=${BITNET:-build/bitnet}
THREADS=${THREADS:-"1 2"}
repeat=${1:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
models=${MODELS:-$tmp/models}
mkdir -p "$models"

llama_bench=
bitnet_bench=
if [ -n "${LLAMA_CPP_BUILD:-}" ]; then
    llama_bench=$LLAMA_CPP_BUILD/bin/llama-bench
    [ -x "$llama_bench" ] || { echo "no $llama_bench (LLAMA_CPP_BUILD)" >&2; exit 1; }
else
    echo "skipping llama.cpp: LLAMA_CPP_BUILD is not set (see the header of $0)"
fi
if [ -n "${BITNET_CPP_BUILD:-}" ]; then
    bitnet_bench=$BITNET_CPP_BUILD/bin/llama-bench
    [ -x "$bitnet_bench" ] || { echo "no $bitnet_bench (BITNET_CPP_BUILD)" >&2; exit 1; }
else
    echo "skipping bitnet.cpp: BITNET_CPP_BUILD is not set (see the header of $0)"
fi

# name arch type embd-type: the model files, made once
for spec in "i2s-f16 bitnet-b1.58 i2_s f16" "i2s-q6k bitnet-b1.58 i2_s q6_k" \
            "tq2-f16 bitnet tq2_0 f16" "tq2-q6k bitnet tq2_0 q6_k" \
            "tq1-q6k bitnet tq1_0 q6_k"; do
    set -- $spec
    if [ ! -f "$models/$1.gguf" ]; then
        echo "making $models/$1.gguf ($2, $3, lm_head $4)"
        "$BITNET" synth "$models/$1.gguf" --preset 2b-4t --arch "$2" --type "$3" \
            --embd-type "$4" > /dev/null
    fi
    "$BITNET" info --json "$models/$1.gguf" | python3 -c \
        'import json,sys; print(sum(t["bytes"] for t in json.load(sys.stdin)["tensors"]))' \
        > "$tmp/$1.bytes"
done

# bytes per token with the lm_head in Q8_0: the F16 embedding's bytes replaced by Q8_0's
for m in i2s-f16 tq2-f16; do
    "$BITNET" info --json "$models/$m.gguf" | python3 -c '
import json, sys
ts = json.load(sys.stdin)["tensors"]
e = [t for t in ts if t["name"] == "token_embd.weight"][0]
rows, cols = e["shape"][1], e["shape"][0]
print(sum(t["bytes"] for t in ts) - e["bytes"] + rows * cols // 32 * 34)' > "$tmp/$m-q8.bytes"
done

# engine model: the rows, in this order (each peer row right after ours on its file);
# where our kernels are a wider family than AVX2 (avx512, amx), ours again with
# BITNET_KERNELS=avx2 on the F16 files (rows "ours, avx2 kernels"), and with avx512
# where they are amx
wide=
if "$BITNET" info --system | grep -Eq '^kernels: *(avx512|amx)'; then
    wide=" ours-avx2:i2s-f16 ours-avx2:tq2-f16"
fi
if "$BITNET" info --system | grep -q '^kernels: *amx'; then
    wide="$wide ours-avx512:i2s-f16 ours-avx512:tq2-f16"
fi
runs="ours:i2s-f16 bitnet.cpp:i2s-f16 ours-q8:i2s-f16 ours:i2s-q6k bitnet.cpp:i2s-q6k
ours:tq2-f16 llama.cpp:tq2-f16 ours-q8:tq2-f16 ours:tq2-q6k llama.cpp:tq2-q6k
ours:tq1-q6k llama.cpp:tq1-q6k$wide"

# engine model threads -> $tmp/res: "engine model threads pp tg", or "... fail fail"
parse='
import json, statistics, sys
res = json.load(open(sys.argv[1]))
def med(kind):
    for r in res:
        pp, tg = r.get("n_prompt", 0), r.get("n_gen", 0)
        if (kind == "pp" and pp > 0 and tg == 0) or (kind == "tg" and tg > 0 and pp == 0):
            return "%.3f" % statistics.median(r["samples_ts"])
    return "fail"
print(med("pp"), med("tg"))'
bench() {
    engine=$1 model=$2 t=$3
    f=$models/$model.gguf
    case $engine in
        ours) set -- "$BITNET" bench -m "$f" -p 128 -n 64 -t "$t" -r "$repeat" --json ;;
        ours-q8) set -- "$BITNET" bench -m "$f" -p 128 -n 64 -t "$t" -r "$repeat" --json \
                     --lm-head q8_0 ;;
        ours-avx2) set -- env BITNET_KERNELS=avx2 "$BITNET" bench -m "$f" -p 128 -n 64 \
                       -t "$t" -r "$repeat" --json ;;
        ours-avx512) set -- env BITNET_KERNELS=avx512 "$BITNET" bench -m "$f" -p 128 \
                         -n 64 -t "$t" -r "$repeat" --json ;;
        llama.cpp) set -- "$llama_bench" -m "$f" -p 128 -n 64 -t "$t" -r "$repeat" -o json ;;
        bitnet.cpp) set -- "$bitnet_bench" -m "$f" -p 128 -n 64 -t "$t" -r "$repeat" -o json ;;
    esac
    cat "$f" > /dev/null  # in the page cache before either engine maps it
    if "$@" > "$tmp/out.json" 2> "$tmp/err" && vals=$(python3 -c "$parse" "$tmp/out.json")
    then
        echo "$engine $model $t $vals" >> "$tmp/res"
    else
        echo "$engine failed on $model.gguf at $t threads: $(grep -i -m1 'error' "$tmp/err" ||
            tail -n 1 "$tmp/err")"
        echo "$engine $model $t fail fail" >> "$tmp/res"
    fi
}

: > "$tmp/res"
: > "$tmp/bw"
for t in $THREADS; do
    for r in $runs; do
        engine=${r%%:*}
        model=${r#*:}
        case $engine in
            llama.cpp) [ -n "$llama_bench" ] || continue ;;
            bitnet.cpp) [ -n "$bitnet_bench" ] || continue ;;
        esac
        bw=$("$BITNET" membw -t "$t" --mib 512 --repeat 3 |
             sed -n 's/read bandwidth: \([0-9.]*\) GB\/s.*/\1/p')
        echo "$t $bw" >> "$tmp/bw"
        echo "  $engine $model.gguf, $t threads (read bandwidth $bw GB/s)" >&2
        bench "$engine" "$model" "$t"
    done
done

python3 - "$tmp" "$THREADS" <<'EOF'
import sys
tmp, threads = sys.argv[1], sys.argv[2].split()
label = {"i2s-f16": "I2_S / F16", "i2s-q6k": "I2_S / Q6_K", "tq2-f16": "TQ2_0 / F16",
         "tq2-q6k": "TQ2_0 / Q6_K", "tq1-q6k": "TQ1_0 / Q6_K"}
bw = {}
for line in open(tmp + "/bw"):
    t, v = line.split()
    bw[t] = max(bw.get(t, 0.0), float(v))   # the highest of the count's measurements
res, rows = {}, []
for line in open(tmp + "/res"):
    engine, model, t, pp, tg = line.split()
    res[engine, model, t] = (None if pp == "fail" else float(pp),
                             None if tg == "fail" else float(tg))
    if (engine, model) not in rows:
        rows.append((engine, model))
def nbytes(model, engine=""):
    suffix = "-q8" if engine == "ours-q8" else ""
    return int(open("%s/%s%s.bytes" % (tmp, model, suffix)).read())
def cols(engine, model):
    out = []
    for k in (0, 1):  # pp, tg
        for t in threads:
            out.append(res.get((engine, model, t), (None, None))[k])
    for t in threads:
        tg = res.get((engine, model, t), (None, None))[1]
        out.append(None if tg is None else tg / (bw[t] * 1e9 / nbytes(model, engine)))
    return out
def fmt(v, d=1):
    return "-" if v is None else "%.*f" % (d, v)
print("read bandwidth: " + ", ".join("%s GB/s at %st" % (bw[t], t) for t in threads)
      + "; decode limits (tok/s): " + "; ".join(
          "%s %s" % (label[m], "/".join("%.1f" % (bw[t] * 1e9 / nbytes(m)) for t in threads))
          for m in label if any(r[1] == m for r in rows)) + " (" + "/".join(t + "t" for t in threads) + ")")
print()
head = ["engine", "weights / lm_head", "MB per token"]
head += ["pp128 %st" % t for t in threads] + ["tg64 %st" % t for t in threads]
head += ["tg %st / limit" % t for t in threads]
print("| " + " | ".join(head) + " |")
print("|---|---|" + "---:|" * (len(head) - 2))
n = len(threads)
for engine, model in rows:
    c = cols(engine, model)
    shown = label[model] if engine != "ours-q8" else label[model].split(" /")[0] + " / Q8_0"
    name = {"ours-q8": "ours, lm_head q8_0", "ours-avx2": "ours, avx2 kernels",
            "ours-avx512": "ours, avx512 kernels"}.get(engine, engine)
    print("| %s | %s | %.0f | %s |" % (name, shown, nbytes(model, engine) / 1e6,
          " | ".join([fmt(v) for v in c[:2 * n]] + [fmt(v, 2) for v in c[2 * n:]])))
    if engine not in ("ours", "ours-q8") and ("ours", model) in rows:
        o = cols("ours", model)
        r = [None if a is None or b is None else a / b for a, b in zip(o, c)]
        print("| ours / %s | %s | | %s |" % (engine, label[model],
              " | ".join(fmt(v, 2) for v in r)))
EOF
