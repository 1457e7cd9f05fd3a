// client.mjs - drives `bitnet serve` with OpenAI's official client (npm `openai`), as
// an application does: chat and completions, streamed and not, stop texts, errors the
// client turns into its exception classes, then a load of CLIENTS concurrent clients x
// REQUESTS requests (streamed and not, greedy and seeded) whose every answer must be
// the one the same request got alone (a slot's sampler or KV cache never leaks into
// another's), and the allocator's live bytes back at their idle value afterwards; then
// the same load again, after which the resident memory must not have grown (not under
// AddressSanitizer, SANITIZED=1, whose quarantine keeps freed memory).
//
//   BASE_URL=http://127.0.0.1:PORT/v1 API_KEY=KEY EXPECT=FILE node client.mjs
// EXPECT holds `bitnet generate --temp 0 --no-echo -n 16 -p "Hello world"`'s text.
import OpenAI from "openai";
import { readFileSync } from "node:fs";

const base = process.env.BASE_URL;
const key = process.env.API_KEY;
const clients = Number(process.env.CLIENTS || 16);
const requests = Number(process.env.REQUESTS || 20);
let passed = 0;
let failed = 0;

function check(cond, what) {
    if (cond) passed++;
    else {
        failed++;
        console.error(`FAIL: ${what}`);
    }
}

function same(got, want, what) {
    check(got === want, `${what}: got ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
}

const client = new OpenAI({ baseURL: base, apiKey: key, maxRetries: 0, timeout: 60000 });

async function metrics() {
    const r = await fetch(base.replace(/\/v1$/, "/metrics"),
                          { headers: { Authorization: `Bearer ${key}` } });
    const text = await r.text();
    const get = (name) => Number((text.match(new RegExp(`^${name} (\\S+)$`, "m")) || [])[1]);
    return { live: get("bitnet_memory_live_bytes") - get("bitnet_memory_generator_bytes"),
             gen: get("bitnet_memory_generator_bytes"), rss: get("bitnet_resident_bytes"),
             busy: get("bitnet_slots_busy"), queue: get("bitnet_queue_length") };
}

// The text of a streamed completion or chat reply, its finish reason and usage.
async function collect(stream, chat) {
    let text = "", finish = null, usage = null, chunks = 0;
    for await (const c of stream) {
        chunks++;
        if (c.usage) usage = c.usage;
        for (const ch of c.choices) {
            text += chat ? (ch.delta.content ?? "") : ch.text;
            finish = ch.finish_reason ?? finish;
        }
    }
    return { text, finish, usage, chunks };
}

async function completion(params, stream) {
    if (!stream) {
        const r = await client.completions.create(params);
        return { text: r.choices[0].text, finish: r.choices[0].finish_reason, usage: r.usage };
    }
    return collect(await client.completions.create({ ...params, stream: true }), false);
}

async function chat(params, stream) {
    if (!stream) {
        const r = await client.chat.completions.create(params);
        return { text: r.choices[0].message.content, finish: r.choices[0].finish_reason,
                 usage: r.usage, role: r.choices[0].message.role };
    }
    return collect(await client.chat.completions.create({ ...params, stream: true,
        stream_options: { include_usage: true } }), true);
}

// --- the model list
const models = await client.models.list();
const model = models.data[0].id;
check(models.data.length === 1 && typeof model === "string", "models.list()");

// --- completions: the CLI's text, whole and streamed
const expect = readFileSync(process.env.EXPECT).subarray(0, -1);   // less its newline
const want = new TextDecoder("utf-8").decode(expect);   // U+FFFD per maximal subpart
const p = { model, prompt: "Hello world", max_tokens: 16, temperature: 0 };
const whole = await completion(p, false);
same(whole.text, want, "completions.create as bitnet generate --temp 0");
same(whole.finish, "length", "finish_reason");
same(whole.usage.completion_tokens, 16, "usage.completion_tokens");
const streamed = await completion(p, true);
same(streamed.text, want, "streamed completion as bitnet generate --temp 0");

// --- prompt reuse: the same request again reuses the slot that holds its prompt (all of
// it but the last token, whose logits are needed) and gets the same text; with
// cache_prompt: false (llama.cpp's field) nothing is reused, and the text is the same
const again = await completion(p, false);
same(again.text, want, "the same completion again");
same(again.usage.prompt_tokens_details?.cached_tokens, again.usage.prompt_tokens - 1,
     "usage.prompt_tokens_details.cached_tokens of a repeated prompt");
const fresh = await completion({ ...p, cache_prompt: false }, false);
same(fresh.text, want, "the same completion with cache_prompt: false");
same(fresh.usage.prompt_tokens_details?.cached_tokens, 0, "cache_prompt: false reuses nothing");

// --- chat: whole and streamed alike, usage at the end of the stream
const msgs = [{ role: "system", content: "Be brief." }, { role: "user", content: "Hello!" }];
const c1 = await chat({ model, messages: msgs, max_tokens: 10, temperature: 0 }, false);
same(c1.role, "assistant", "chat role");
const c2 = await chat({ model, messages: msgs, max_tokens: 10, temperature: 0 }, true);
same(c2.text, c1.text, "streamed chat as the whole reply");
same(c2.usage?.completion_tokens, c1.usage.completion_tokens, "streamed usage");
check(c2.chunks >= 3, `the stream came in chunks (${c2.chunks})`);

// --- stop texts: the text before the first occurrence
const longer = await completion({ ...p, prompt: "The quick brown fox", max_tokens: 40 }, false);
const stop = [...longer.text].slice(8, 10).join("");
const before = longer.text.slice(0, longer.text.indexOf(stop));
const s1 = await completion({ ...p, prompt: "The quick brown fox", max_tokens: 40, stop: [stop] },
                            false);
same(s1.text, before, "stop text");
same(s1.finish, "stop", "stop finish_reason");
const s2 = await completion({ ...p, prompt: "The quick brown fox", max_tokens: 40, stop },
                            true);
same(s2.text, before, "streamed stop text");

// --- logprobs, where the SDK's types put them (openai/resources/chat/completions:
// ChatCompletion.Choice.Logprobs {content, refusal}, ChatCompletionTokenLogprob {token,
// logprob, bytes, top_logprobs: TopLogprob[]}; openai/resources/completions:
// CompletionChoice.Logprobs {tokens, token_logprobs, top_logprobs: {[token]: number}[],
// text_offset}); greedy, so the chosen token is the first alternative
const utf8 = (bytes) => new TextDecoder("utf-8").decode(Uint8Array.from(bytes));
function tokenLogprob(t, top) {
    return typeof t.token === "string" && typeof t.logprob === "number" && t.logprob <= 0 &&
        Array.isArray(t.bytes) && t.bytes.every((b) => Number.isInteger(b) && b >= 0 && b < 256) &&
        utf8(t.bytes) === t.token &&
        (top === undefined || (Array.isArray(t.top_logprobs) && t.top_logprobs.length === top &&
            t.top_logprobs.every((x) => tokenLogprob(x)) &&
            t.top_logprobs.every((x, i) => i === 0 || x.logprob <= t.top_logprobs[i - 1].logprob)));
}
const lq = { model, messages: msgs, max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 3 };
const l1 = await client.chat.completions.create(lq);
const lc = l1.choices[0].logprobs?.content ?? [];
same(lc.length, l1.usage.completion_tokens, "chat logprobs: an entry per generated token");
check(lc.length > 0 && lc.every((t) => tokenLogprob(t, 3)), "chat logprobs: the SDK's types");
same(lc.map((t) => t.token).join(""), l1.choices[0].message.content, "chat logprobs join to the text");
same(l1.choices[0].logprobs?.refusal, null, "chat logprobs refusal");
check(lc.every((t) => t.logprob === t.top_logprobs[0].logprob), "greedy: the chosen token is the best");
// streamed, merged by the SDK's own stream helper
const l2 = await client.chat.completions.stream(lq).finalChatCompletion();
same(JSON.stringify(l2.choices[0].logprobs?.content), JSON.stringify(lc),
     "streamed chat logprobs (the SDK's finalChatCompletion) as the whole reply's");
const lp = { model, prompt: "Hello world", max_tokens: 8, temperature: 0, logprobs: 2 };
const l3 = await client.completions.create(lp);
const ll = l3.choices[0].logprobs;
const n = l3.usage.completion_tokens;
check(ll && [ll.tokens, ll.token_logprobs, ll.top_logprobs, ll.text_offset].every(
          (a) => Array.isArray(a) && a.length === n), "completion logprobs: four lists of one entry per token");
check(ll.tokens.every((t) => typeof t === "string") &&
      ll.token_logprobs.every((v) => typeof v === "number" && v <= 0) &&
      ll.top_logprobs.every((o) => Object.keys(o).length >= 1 && Object.keys(o).length <= 3 &&
                                   Object.values(o).every((v) => typeof v === "number" && v <= 0)),
      "completion logprobs: the SDK's types");
same(ll.tokens.join(""), l3.choices[0].text, "completion logprobs join to the text");
same(JSON.stringify(ll.text_offset), JSON.stringify(ll.tokens.map((t, i) =>
         [...ll.tokens.slice(0, i).join("")].length)), "text_offset: characters before each token");
const merged = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
for await (const c of await client.completions.create({ ...lp, stream: true }))
    for (const ch of c.choices)
        if (ch.logprobs)
            for (const f of Object.keys(merged)) merged[f].push(...ch.logprobs[f]);
same(JSON.stringify(merged), JSON.stringify(ll), "streamed completion logprobs as the whole reply's");
try {
    await client.chat.completions.create({ ...lq, top_logprobs: 21 });
    check(false, "top_logprobs 21 accepted");
} catch (e) {
    check(e instanceof OpenAI.BadRequestError, `BadRequestError (${e.constructor.name})`);
    same(e.param, "top_logprobs", "param of top_logprobs 21");
}

// --- errors as the client's exceptions
try {
    await client.chat.completions.create({ model, messages: msgs, max_tokens: "ten" });
    check(false, "max_tokens 'ten' accepted");
} catch (e) {
    check(e instanceof OpenAI.BadRequestError, `BadRequestError (${e.constructor.name})`);
    same(e.status, 400, "status of a wrong type");
    same(e.param, "max_tokens", "param of a wrong type");
}
try {
    const bad = new OpenAI({ baseURL: base, apiKey: key + "x", maxRetries: 0 });
    await bad.models.list();
    check(false, "a wrong key accepted");
} catch (e) {
    check(e instanceof OpenAI.AuthenticationError, `AuthenticationError (${e.constructor.name})`);
}

// --- load: every answer as the same request alone
const prompts = ["Hello world", "Once upon a time", "a", "The quick brown fox", "0 1 2 3",
                 "Bonjour", "x y z", "What is it?"];
function request(i) {
    const kind = i % 4;               // completion, chat, seeded completion, seeded chat
    const prompt = prompts[i % prompts.length];
    const sampled = kind >= 2 ? { temperature: 1.0, top_k: 0, top_p: 1, seed: 1000 + i } :
                                { temperature: 0 };
    const max_tokens = 4 + (i % 5) * 3;
    return kind % 2 === 0 ? { chat: false, params: { model, prompt, max_tokens, ...sampled } }
                          : { chat: true, params: { model, max_tokens, ...sampled,
                              messages: [{ role: "user", content: prompt }] } };
}
const n_distinct = 40;
const reference = [];
for (let i = 0; i < n_distinct; i++) {
    const r = request(i);
    reference.push((await (r.chat ? chat(r.params, false) : completion(r.params, false))).text);
}
async function load() {
    let wrong = 0, done = 0;
    await Promise.all(Array.from({ length: clients }, async (_, c) => {
        for (let k = 0; k < requests; k++) {
            const i = (c * 7 + k * 3) % n_distinct;
            const r = request(i);
            const stream = (c + k) % 2 === 1;
            const got = await (r.chat ? chat(r.params, stream) : completion(r.params, stream));
            if (got.text !== reference[i]) {
                wrong++;
                if (wrong <= 3)
                    console.error(`request ${i} (stream ${stream}): ${JSON.stringify(got.text)}` +
                                  ` != ${JSON.stringify(reference[i])}`);
            }
            done++;
        }
    }));
    return { wrong, done };
}
// the idle value: the last request's memory is freed just after its answer went out,
// so read until two reads 100 ms apart agree
async function idle() {
    let prev = await metrics();
    for (let i = 0; i < 50; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const m = await metrics();
        if (m.live === prev.live && m.busy === 0) return m;
        prev = m;
    }
    return prev;
}
const before_load = await idle();
const t0 = Date.now();
const first = await load();
same(first.done, clients * requests, "requests answered under load");
same(first.wrong, 0, "answers under load that differ from the same request alone");
const warm = await idle();
const sanitized = process.env.SANITIZED === "1";
if (!sanitized) {
    const second = await load();
    same(second.wrong, 0, "answers of a second load that differ");
}
const after = await idle();
console.log(`load: ${(sanitized ? 1 : 2) * clients * requests} requests from ${clients} clients in ` +
            `${((Date.now() - t0) / 1000).toFixed(1)} s; live bytes ${before_load.live} -> ${warm.live} -> ` +
            `${after.live} (and the generator's ${before_load.gen} -> ${after.gen})` +
            (sanitized ? "" : `; RSS ${(warm.rss / 1e6).toFixed(1)} MB after the first ` +
                              `load, ${(after.rss / 1e6).toFixed(1)} MB after the second`));
// (the generator's batch buffer keeps the size of the largest step: counted apart)
same(after.live, before_load.live, "the allocator's live bytes after the load");
check(after.gen <= 4 * 256 * 8 + 65536, `the generator holds ${after.gen} bytes`);
same(after.busy, 0, "slots busy after the load");
same(after.queue, 0, "queue after the load");
// the second load, as large as the first, must not grow the process (4 MB of slack for
// the C library's arenas)
if (sanitized)
    console.log("RSS not checked: AddressSanitizer keeps freed memory in its quarantine");
else
    check(after.rss <= warm.rss + 4e6, `RSS grew from ${warm.rss} to ${after.rss}`);

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
