// Drives the status page in headless Chromium (Debian's, through playwright-core):
// waits for the live view, for `peer` in the peers table, searches the box for a skill
// and waits for `expect` among the results; optionally saves a screenshot.
// Usage: node page.mjs URL PEER EXPECT [SCREENSHOT]
import { createRequire } from "node:module";
const require = createRequire(process.env.PLAYWRIGHT_CORE || import.meta.url);
const { chromium } = require("playwright-core");

const [url, peer, expect, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);
  await page.waitForSelector("#live.on", { timeout: 20000 });
  await page.waitForFunction((p) => document.querySelector("#peers").textContent.includes(p), peer, { timeout: 60000 });
  await page.fill("#search-q", "when is high tide");
  await page.click("#search-go");
  await page.waitForFunction((e) => document.querySelector("#search-results").textContent.includes(e), expect, { timeout: 60000 });
  // The search started the embedding worker: the governor's loaded models show it.
  await page.waitForFunction(() => document.querySelector("#models").textContent.includes("embedding-model"), null, { timeout: 30000 });
  const out = {
    models: await page.textContent("#models"),
    live: await page.textContent("#live"),
    destination: await page.textContent("#destination"),
    peers: await page.textContent("#peers"),
    interfaces: await page.textContent("#interfaces"),
    results: await page.textContent("#search-results"),
    errors,
  };
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
