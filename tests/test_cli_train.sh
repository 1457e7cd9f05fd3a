#!/bin/sh
# test_cli_train.sh - `bitnet train` and `bitnet export` driven as a user would, on a
# small model (width 128, 1 layer, context 16) with the tokenizer of a `bitnet synth`
# model and a generated text:
# - the run's files: train.csv (its columns, a row per step, val_loss on evaluation
#   steps), loss.svg (an SVG with axes labels and a legend), the checkpoints --keep
#   leaves, model.gguf that info, generate and perplexity take;
# - the validation loss is the log of the perplexity `bitnet perplexity -c 16` reports
#   for model.gguf on the validation text (within 2e-4: model.gguf holds the embedding
#   in f16 and the engine keeps an f16 KV cache, against the training code's f32);
# - resume: from a checkpoint, and after Ctrl-C (exit 130 and a checkpoint), the run
#   ends with the same model.gguf, byte for byte, and the same losses as the
#   uninterrupted run; options that disagree with the checkpoint are refused;
# - `bitnet export` of the last checkpoint writes model.gguf's bytes again; `bitnet
#   export --hf` writes a Hugging Face folder that `bitnet convert` turns back into the
#   same tensors (the same table, the same logits);
# - 1 and 2 threads give the same model.gguf and losses;
# - token shards (bitnet corpus) as --data, with their val split; shards of another
#   tokenizer are refused;
# - bad input: missing or empty data, a tokenizer that does not load, heads that do not
#   divide the width, a context longer than the data, --steps 0, a shape i2_s cannot
#   hold, a full disk when saving: a message, a non-zero exit, no file left behind.
set -u
BITNET=${BITNET:?set BITNET to the program}
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$tmp/out
err=$tmp/err

ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

# expect CODE DESCRIPTION -- ARGS...: runs `bitnet ARGS`, checks the exit code
expect() {
    code=$1; what=$2; shift 3
    "$BITNET" "$@" >"$out" 2>"$err"
    rc=$?
    if [ "$rc" -eq "$code" ]; then ok; else
        fail "$what: 'bitnet $*' exited $rc, expected $code"
        sed 's/^/  stderr: /' "$err" >&2
    fi
}

grep_in() {
    if grep -q -- "$2" "$1"; then ok; else
        fail "$3: no '$2' in:"
        sed 's/^/  | /' "$1" >&2
    fi
}

same() {
    if [ "$2" = "$3" ]; then ok; else fail "$1: '$2', expected '$3'"; fi
}

"$BITNET" synth "$tmp/tok.gguf" --layers 1 --seed 3 > /dev/null 2>&1 || {
    echo "FAIL: bitnet synth"; exit 1; }
# a text with some structure: numbered sentences from a small vocabulary
awk 'BEGIN { split("the a one every old young cat dog king queen house river sat ran saw sang found near under over by", w, " ");
    for (i = 1; i <= 1200; i++) { s = ""; for (j = 0; j < 8; j++) s = s w[(i * 7 + j * j * 3 + int(i / 9)) % 21 + 1] " ";
        printf "%d: %s.\n", i, s } }' > "$tmp/train.txt"
head -c 4000 "$tmp/train.txt" | tail -c 3000 > "$tmp/val.txt"
small="--tokenizer $tmp/tok.gguf --dim 128 --layers 1 --heads 2 --ffn 256 --ctx 16 --batch 2"

# ---------------------------------------------------------------- a whole run
expect 0 "a run" -- train --data "$tmp/train.txt" --val "$tmp/val.txt" $small \
    --steps 12 --eval-every 4 --save-every 4 --keep 2 --val-windows 6 --out "$tmp/a"
grep_in "$err" "step 12/12" "the progress line"
grep_in "$err" "memory: .* in one allocation" "the planned memory"
same "the run's files" "$(cd "$tmp/a" && ls | tr '\n' ' ')" \
    "ckpt-000008.ckpt ckpt-000012.ckpt loss.svg model.gguf train.csv "
same "train.csv header" "$(head -1 "$tmp/a/train.csv")" \
    "step,lr,train_loss,val_loss,tokens_per_second,lambda,grad_norm"
same "train.csv rows" "$(tail -n +2 "$tmp/a/train.csv" | cut -d, -f1 | tr '\n' ' ')" \
    "1 2 3 4 5 6 7 8 9 10 11 12 "
same "val_loss on evaluation steps" \
    "$(awk -F, 'NR > 1 && $4 != "" { printf "%s ", $1 }' "$tmp/a/train.csv")" "4 8 12 "
grep_in "$tmp/a/loss.svg" "<svg xmlns" "loss.svg is SVG"
grep_in "$tmp/a/loss.svg" ">validation loss<" "loss.svg's legend"
grep_in "$tmp/a/loss.svg" ">step<" "loss.svg's x axis label"
grep_in "$tmp/a/loss.svg" "<polyline" "loss.svg's curves"
expect 0 "info on model.gguf" -- info "$tmp/a/model.gguf"
grep_in "$out" "bitnet-b1.58" "model.gguf's arch"
grep_in "$out" "blk.0.attn_q.weight .*i2_s" "model.gguf's i2_s projections"
expect 0 "generate with model.gguf" -- generate -m "$tmp/a/model.gguf" -p "the old king" \
    -n 8 --temp 0
# the validation loss against bitnet perplexity on the same text
expect 0 "perplexity of model.gguf" -- perplexity -m "$tmp/a/model.gguf" -f "$tmp/val.txt" \
    -c 16 --chunks 6
ppl=$(sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p' "$out")
val=$(awk -F, 'END { print $4 }' "$tmp/a/train.csv")
if awk -v p="$ppl" -v v="$val" 'BEGIN { d = log(p) - v; if (d < 0) d = -d; exit !(p > 0 && d < 2e-4) }'; then
    ok; else fail "ln(perplexity $ppl) is not the last validation loss $val"; fi

# ---------------------------------------------------------------- resume
expect 0 "resume from step 8" -- train --data "$tmp/train.txt" --val "$tmp/val.txt" \
    --resume "$tmp/a/ckpt-000008.ckpt" --out "$tmp/b" --val-windows 6 --eval-every 4
grep_in "$err" "resuming .* at step 8 of 12" "resume says where"
if cmp -s "$tmp/a/model.gguf" "$tmp/b/model.gguf"; then ok; else
    fail "resumed run: model.gguf differs from the uninterrupted run's"; fi
same "resumed run: losses" "$(cut -d, -f1-4 "$tmp/b/train.csv")" \
    "$(cut -d, -f1-4 "$tmp/a/train.csv")"
expect 0 "export of the last checkpoint" -- export "$tmp/a/ckpt-000012.ckpt" "$tmp/e.gguf"
if cmp -s "$tmp/a/model.gguf" "$tmp/e.gguf"; then ok; else
    fail "bitnet export: not model.gguf's bytes"; fi
# to a Hugging Face folder and back (bitnet convert): the same tensors, the same logits
expect 0 "export --hf of the last checkpoint" -- export "$tmp/a/ckpt-000012.ckpt" --hf "$tmp/hf"
same "the Hugging Face folder" "$(cd "$tmp/hf" && ls | tr '\n' ' ')" \
    "config.json model.safetensors tokenizer.json tokenizer_config.json "
expect 0 "convert it back" -- convert "$tmp/hf" -o "$tmp/back.gguf" -q
tensors() { "$BITNET" info "$1" | grep -E '^  (token_embd|blk|output)'; }
same "converted back: the tensor table" "$(tensors "$tmp/back.gguf")" "$(tensors "$tmp/a/model.gguf")"
"$BITNET" logits -m "$tmp/a/model.gguf" --tokens 1,5,9,30,200 --all -o "$tmp/l1" > /dev/null 2>&1
"$BITNET" logits -m "$tmp/back.gguf" --tokens 1,5,9,30,200 --all -o "$tmp/l2" > /dev/null 2>&1
if cmp -s "$tmp/l1" "$tmp/l2"; then ok; else fail "converted back: other logits"; fi
expect 1 "resume with another learning rate" -- train --data "$tmp/train.txt" \
    --val "$tmp/val.txt" --resume "$tmp/a/ckpt-000008.ckpt" --out "$tmp/c" --lr 0.5
grep_in "$err" "lr 0.5 disagrees with the checkpoint" "the disagreeing option is named"
expect 1 "resume on other data" -- train --data "$tmp/val.txt" --val "$tmp/val.txt" \
    --resume "$tmp/a/ckpt-000008.ckpt" --out "$tmp/c"
grep_in "$err" "not the checkpoint's" "other data is refused"

# Ctrl-C mid-run, then resume: the same model as a run never stopped. The interrupt is
# sent once the run has logged a few steps; a run too quick to be caught is tried again
# ten times longer.
steps=40
while :; do
    rm -rf "$tmp/int"
    "$BITNET" train --data "$tmp/train.txt" --val "$tmp/val.txt" $small --steps $steps \
        --eval-every 1 --val-windows 1 --out "$tmp/int" > "$out" 2> "$err" &
    pid=$!
    i=0
    while [ $i -lt 2000 ] && kill -0 $pid 2>/dev/null &&
        [ "$({ wc -l < "$tmp/int/train.csv"; } 2>/dev/null || echo 0)" -lt 3 ]; do
        sleep 0.01; i=$((i + 1)); done
    kill -INT $pid 2>/dev/null
    wait $pid
    rc=$?
    if [ "$rc" -eq 0 ] && [ $steps -lt 4000 ]; then steps=$((steps * 10)); continue; fi
    break
done
same "Ctrl-C: exit status" "$rc" 130
grep_in "$err" "interrupted after step .*: saved .*ckpt-.*ckpt; continue with --resume" \
    "Ctrl-C: what was saved"
ck=$(ls "$tmp/int"/ckpt-*.ckpt 2>/dev/null | tail -1)
expect 0 "resume after Ctrl-C" -- train --data "$tmp/train.txt" --val "$tmp/val.txt" \
    --resume "$ck" --out "$tmp/int" --eval-every 100 --val-windows 2
expect 0 "the same run uninterrupted" -- train --data "$tmp/train.txt" --val "$tmp/val.txt" \
    $small --steps $steps --eval-every 100 --val-windows 2 --out "$tmp/long"
if cmp -s "$tmp/long/model.gguf" "$tmp/int/model.gguf"; then ok; else
    fail "interrupted and resumed: model.gguf differs from the uninterrupted run's"; fi

# the thread count changes nothing: 1 and 2 threads, the same model and losses
expect 0 "1 thread" -- train --data "$tmp/train.txt" --val "$tmp/val.txt" $small --steps 6 \
    --eval-every 3 --val-windows 4 -t 1 --out "$tmp/t1"
expect 0 "2 threads" -- train --data "$tmp/train.txt" --val "$tmp/val.txt" $small --steps 6 \
    --eval-every 3 --val-windows 4 -t 2 --out "$tmp/t2"
if cmp -s "$tmp/t1/model.gguf" "$tmp/t2/model.gguf"; then ok; else
    fail "1 and 2 threads: model.gguf differs"; fi
same "1 and 2 threads: losses" "$(cut -d, -f1-4 "$tmp/t2/train.csv")" \
    "$(cut -d, -f1-4 "$tmp/t1/train.csv")"

# token shards as --data (bitnet corpus), their val split for validation; shards of
# another tokenizer are refused
sed 's/$/\n/' "$tmp/train.txt" > "$tmp/paras.txt"
expect 0 "bitnet corpus" -- corpus --tokenizer "$tmp/tok.gguf" -o "$tmp/shards" \
    --val-frac 0.1 "$tmp/paras.txt"
expect 0 "a run on token shards" -- train --data "$tmp/shards" $small --steps 4 \
    --eval-every 2 --val-windows 4 --out "$tmp/sh"
grep_in "$err" "validation tokens in 4 windows of 16 (token shards)" "shards: said"
same "shards: val_loss on evaluation steps" \
    "$(awk -F, 'NR > 1 && $4 != "" { printf "%s ", $1 }' "$tmp/sh/train.csv")" "2 4 "
"$BITNET" synth "$tmp/tok2.gguf" --layers 1 --vocab 600 > /dev/null 2>&1
expect 1 "shards of another tokenizer" -- train --data "$tmp/shards" $small \
    --tokenizer "$tmp/tok2.gguf" --steps 4 --out "$tmp/sh2"
grep_in "$err" "made with another tokenizer" "shards of another tokenizer: said"

# ---------------------------------------------------------------- bad input
d="$tmp/bad"
expect 1 "missing data" -- train --data "$tmp/none.txt" $small --out "$d"
grep_in "$err" "cannot open .*none.txt" "missing data: named"
: > "$tmp/empty.txt"
expect 1 "empty data" -- train --data "$tmp/empty.txt" $small --out "$d"
grep_in "$err" "empty.txt is empty" "empty data: named"
echo "not a tokenizer at all" > "$tmp/tok.txt"
expect 1 "a tokenizer that does not load" -- train --data "$tmp/train.txt" \
    --tokenizer "$tmp/tok.txt" --out "$d"
grep_in "$err" "tok.txt" "bad tokenizer: named"
expect 2 "heads that do not divide the width" -- train --data "$tmp/train.txt" $small \
    --heads 3 --out "$d"
grep_in "$err" "heads 3 does not divide --dim 128" "heads: said"
head -c 200 "$tmp/train.txt" > "$tmp/short.txt"
expect 1 "a context longer than the data" -- train --data "$tmp/short.txt" \
    --val "$tmp/val.txt" $small --ctx 512 --out "$d"
grep_in "$err" "fewer than one sequence of --ctx 512" "short data: said"
expect 2 "--steps 0" -- train --data "$tmp/train.txt" $small --steps 0 --out "$d"
grep_in "$err" "invalid step count '0' for --steps" "--steps 0: said"
expect 1 "a shape i2_s cannot hold" -- train --data "$tmp/train.txt" $small --dim 64 \
    --ffn 128 --out "$d"
grep_in "$err" "multiple of 128" "i2_s shape: said"
if [ ! -e "$d" ]; then ok; else fail "bad input left $d behind"; fi
mkdir "$tmp/full"
(ulimit -f 256; trap '' XFSZ; "$BITNET" train --data "$tmp/train.txt" --val "$tmp/val.txt" \
    $small --steps 2 --out "$tmp/full" > "$out" 2> "$err")
rc=$?
if [ "$rc" -ne 0 ]; then ok; else fail "a full disk: exit 0"; fi
grep_in "$err" "ckpt-000002.ckpt" "a full disk: the file is named"
same "a full disk: no checkpoint or model left" "$(ls "$tmp/full" | grep -c 'ckpt\|gguf')" 0
expect 0 "help" -- train --help
grep_in "$out" "usage: bitnet train --data TRAIN.txt --tokenizer FILE --out DIR" "help"

echo "test_cli_train: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
