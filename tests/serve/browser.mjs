// browser.mjs - the chat page of `bitnet serve` in headless Chromium (puppeteer-core
// driving Debian's chromium), at a phone's size: it loads from /, a message sent shows a
// reply that grows as it streams, Stop ends it (the reply stops growing, the server
// frees the slot), the conversation survives a reload (localStorage), and a screenshot
// is saved.
//
//   BASE_URL=http://127.0.0.1:PORT CHROMIUM=/usr/bin/chromium SHOT=FILE node browser.mjs
import puppeteer from "puppeteer-core";

const base = process.env.BASE_URL;
let passed = 0;
let failed = 0;
function check(cond, what) {
    if (cond) passed++;
    else {
        failed++;
        console.error(`FAIL: ${what}`);
    }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function metric(name) {
    const text = await (await fetch(`${base}/metrics`)).text();
    return Number((text.match(new RegExp(`^${name} (\\S+)$`, "m")) || [])[1]);
}

const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
    const page = await browser.newPage();
    await page.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true });
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    const res = await page.goto(`${base}/`, { waitUntil: "networkidle0" });
    check(res.status() === 200, `GET / status ${res.status()}`);
    check((await page.title()) === "bitnet chat", "the page's title");
    const title = await page.$eval("#title", (e) => e.textContent);
    check(title.includes("big.gguf"), `the model's name in the header: ${title}`);
    // the layout fits a phone's width: nothing wider than the screen
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    check(wide <= 390, `the page is ${wide} px wide on a 390 px screen`);

    // settings: a long reply, so that Stop has something to stop
    await page.click("#toggle");
    await page.$eval("#max_tokens", (e) => { e.value = ""; });
    await page.type("#max_tokens", "1500");
    await page.type("#system", "Be brief.");
    await page.type("#input", "Hello there");
    await page.click("#send");
    await page.waitForFunction(() => {
        const t = document.querySelector(".assistant .text");
        return t && t.textContent.length > 0;
    }, { timeout: 20000 });
    const first = await page.$eval(".assistant .text", (e) => e.textContent.length);
    await sleep(300);
    const later = await page.$eval(".assistant .text", (e) => e.textContent.length);
    check(later > first, `the reply grows as it streams (${first} -> ${later} characters)`);
    check(await page.$eval("#stop", (e) => !e.disabled), "Stop is enabled while streaming");
    check((await metric("bitnet_slots_busy")) === 1, "a slot is busy while streaming");

    await page.click("#stop");
    await page.waitForFunction(() => document.querySelector("#send").disabled === false,
                               { timeout: 5000 });
    const stopped = await page.$eval(".assistant .text", (e) => e.textContent);
    await sleep(500);
    const after = await page.$eval(".assistant .text", (e) => e.textContent);
    check(stopped.length > 0 && after === stopped, "the reply stops growing after Stop");
    let busy = 1;
    for (let i = 0; i < 50 && busy !== 0; i++) {
        busy = await metric("bitnet_slots_busy");
        await sleep(50);
    }
    check(busy === 0, "Stop frees the server's slot");
    check((await metric('bitnet_generations_total{end="cancelled"}')) >= 1,
          "the server counts the stopped generation as cancelled");

    await page.screenshot({ path: process.env.SHOT });

    // the conversation is kept in the browser
    await page.reload({ waitUntil: "networkidle0" });
    const kept = await page.$$eval(".msg", (ms) => ms.map((m) => m.className));
    check(kept.length === 2 && kept[0].includes("user") && kept[1].includes("assistant"),
          `the conversation after a reload: ${JSON.stringify(kept)}`);
    check(errors.length === 0, `errors in the page: ${errors.join("; ")}`);
} finally {
    await browser.close();
}
console.log(`browser: ${passed} passed, ${failed} failed; screenshot in ${process.env.SHOT}`);
process.exit(failed ? 1 : 0);
