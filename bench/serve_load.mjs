// serve_load.mjs - a load generator for OpenAI-compatible servers (`bitnet serve`,
// llama.cpp's `llama-server`): for each concurrency C, C clients each send REQUESTS
// streamed /v1/completions requests one after another (a fixed prompt, MAX_TOKENS tokens
// with ignore_eos), and it prints one Markdown row per C: aggregate generated tokens/s
// (all completion tokens over the wall time of the level), time to first token and
// inter-token latency (a request's (last - first token time) / (tokens - 1)), median
// and p95 over the requests.
//
//   node serve_load.mjs URL NAME [C...]     env: REQUESTS (2), MAX_TOKENS (32),
//                                           CACHE_PROMPT (0; 1: servers may reuse a
//                                           slot's evaluated prompt)
const [url, name, ...levels] = process.argv.slice(2);
const requests = Number(process.env.REQUESTS || 2);
const maxTokens = Number(process.env.MAX_TOKENS || 32);
const cachePrompt = process.env.CACHE_PROMPT === "1";
const prompt = "The history of the city begins with a small settlement on the river, " +
               "where traders met to exchange";

function quantile(xs, q) {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

// One streamed request: its tokens, time to first token and mean inter-token gap (ms).
async function one() {
    const t0 = performance.now();
    const r = await fetch(`${url}/v1/completions`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        // every request sends the same prompt: with cache_prompt false (the default
        // here) neither server reuses the previous request's evaluated prompt
        body: JSON.stringify({ prompt, max_tokens: maxTokens, temperature: 0,
                               ignore_eos: true, stream: true, cache_prompt: cachePrompt,
                               stream_options: { include_usage: true } }),
    });
    if (!r.ok) throw new Error(`${r.status} ${await r.text()}`);
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let pending = "", first = 0, last = 0, tokens = 0, chunks = 0;
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
            if (d.usage) tokens = d.usage.completion_tokens;
            if (d.choices && d.choices.length && d.choices[0].text) {
                const now = performance.now();
                if (!first) first = now;
                last = now;
                chunks++;
            }
        }
    }
    if (!tokens) tokens = chunks;   // a server without usage in streams
    return { tokens, ttft: first - t0, itl: tokens > 1 ? (last - first) / (tokens - 1) : 0 };
}

console.log(`| server | clients | tokens/s | TTFT median ms | TTFT p95 ms | ITL median ms | ITL p95 ms |`);
console.log(`|---|---:|---:|---:|---:|---:|---:|`);
await one();   // warm-up
for (const c of levels.map(Number)) {
    const results = [];
    const t0 = performance.now();
    await Promise.all(Array.from({ length: c }, async () => {
        for (let k = 0; k < requests; k++) results.push(await one());
    }));
    const secs = (performance.now() - t0) / 1000;
    const total = results.reduce((a, r) => a + r.tokens, 0);
    const ttft = results.map((r) => r.ttft), itl = results.map((r) => r.itl);
    console.log(`| ${name} | ${c} | ${(total / secs).toFixed(2)} | ` +
                `${quantile(ttft, 0.5).toFixed(0)} | ${quantile(ttft, 0.95).toFixed(0)} | ` +
                `${quantile(itl, 0.5).toFixed(1)} | ${quantile(itl, 0.95).toFixed(1)} |`);
}
