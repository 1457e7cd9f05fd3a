// tokenize_hf.mjs TOKENIZER_JSON TEXT_FILE REPEATS - times Hugging Face tokenizers
// (npm @anush008/tokenizers: HF tokenizers 0.22.2, native) encoding a file, the way
// bench/tokenize.sh times `bitnet tokenize`: the whole text in one call, best of
// REPEATS, load time excluded. Prints "hf: N ids, S s, X MB/s".
import { readFileSync } from "node:fs";
import { Tokenizer } from "@anush008/tokenizers";

const [json, file, repeats = "3"] = process.argv.slice(2);
const tokenizer = Tokenizer.fromFile(json);
const text = readFileSync(file, "utf8");
const bytes = Buffer.byteLength(text, "utf8");
let best = Infinity, n = 0;
for (let r = 0; r < Number(repeats); r++) {
  const t0 = process.hrtime.bigint();
  const enc = await tokenizer.encode(text, null, { addSpecialTokens: false });
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  n = enc.getIds().length;
  best = Math.min(best, dt);
}
console.log(`hf: ${n} ids, ${best.toFixed(3)} s, ${(bytes / best / 1e6).toFixed(2)} MB/s`);
