// serve_stall.mjs - how long a long prompt holds back a running stream: one client
// streams MAX_TOKENS tokens of a short prompt; once it has its 8th token, a second
// client sends a prompt of LONG tokens (max_tokens 1, cache_prompt false). Prints
// the stream's largest gap between two tokens, its median gap, and the time the long
// request took.
//
//   node serve_stall.mjs URL NAME      env: MAX_TOKENS (64), LONG (1000)
const [url, name] = process.argv.slice(2);
const maxTokens = Number(process.env.MAX_TOKENS || 64);
const long = Number(process.env.LONG || 1000);

async function post(body) {
    const r = await fetch(`${url}/v1/completions`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ temperature: 0, cache_prompt: false, ...body }),
    });
    if (!r.ok) throw new Error(`${r.status} ${await r.text()}`);
    return r;
}

// LONG token ids of some text, as the server's tokenizer makes them (/tokenize)
const words = ["the", "city", "river", "market", "traders", "met", "to", "exchange",
               "goods", "and", "stories", "of", "distant", "lands"];
const text = Array.from({ length: long }, (_, i) => words[i % words.length]).join(" ");
const tk = await fetch(`${url}/tokenize`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ content: text }),
});
const longPrompt = (await tk.json()).tokens.slice(0, long);
let longDone = null, longMs = 0;
const r = await post({ prompt: "The history of the city begins", max_tokens: maxTokens,
                       ignore_eos: true, stream: true });
const reader = r.body.getReader();
const dec = new TextDecoder();
const times = [];
let pending = "";
for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += dec.decode(value, { stream: true });
    let cut;
    while ((cut = pending.indexOf("\n\n")) >= 0) {
        const ev = pending.slice(0, cut).trim();
        pending = pending.slice(cut + 2);
        if (!ev.startsWith("data: ") || ev === "data: [DONE]") continue;
        const d = JSON.parse(ev.slice(6));
        if (d.choices && d.choices.length && d.choices[0].text) {
            times.push(performance.now());
            if (times.length === 8 && !longDone) {
                const t0 = performance.now();
                longDone = post({ prompt: longPrompt, max_tokens: 1 })
                    .then((x) => x.json()).then((j) => {
                        longMs = performance.now() - t0;
                        return j.usage.prompt_tokens;
                    });
            }
        }
    }
}
const nLong = await longDone;
const gaps = times.slice(1).map((t, i) => t - times[i]).sort((a, b) => a - b);
console.log(`| ${name} | ${nLong} | ${gaps[gaps.length - 1].toFixed(0)} | ` +
            `${gaps[Math.floor(gaps.length / 2)].toFixed(1)} | ${longMs.toFixed(0)} |`);
