"""batch_check.py - checks `bitnet batch` output against `bitnet generate`, run alone
for every prompt with the same options: each JSON line's completion must be the text
`bitnet generate --no-echo` prints (bytes that are not valid UTF-8 turned into U+FFFD
one byte each, as batch writes them), in the prompts' order.

    python3 batch_check.py BITNET MODEL OUT.jsonl N_PROMPTS [GENERATE OPTIONS...]
"""
import json
import subprocess
import sys


def per_byte(b):
    """The text of bytes b, each byte outside valid UTF-8 as U+FFFD."""
    out, i = [], 0
    while i < len(b):
        for n in (1, 2, 3, 4):
            try:
                out.append(b[i:i + n].decode("utf-8"))
                i += n
                break
            except UnicodeDecodeError:
                continue
        else:
            out.append("\ufffd")
            i += 1
    return "".join(out)


def main():
    bitnet, model, path, n_prompts = sys.argv[1:5]
    extra = sys.argv[5:]
    lines = [json.loads(line) for line in open(path, encoding="utf-8")]
    bad = 0
    if [r["index"] for r in lines] != list(range(int(n_prompts))):
        print("indexes: %s" % [r["index"] for r in lines])
        bad += 1
    for r in lines:
        g = subprocess.run([bitnet, "generate", "-m", model, "-p", r["prompt"], "--no-echo"]
                           + extra, capture_output=True, check=True).stdout
        assert g.endswith(b"\n")
        if per_byte(g[:-1]) != r["completion"]:
            print("prompt %d: %r\n  generate: %r" % (r["index"], r["completion"], g[:-1]))
            bad += 1
    sys.exit(1 if bad else 0)


main()
