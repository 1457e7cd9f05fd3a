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
