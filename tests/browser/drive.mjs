// Drives Debian's Chromium through the lab's page for tests/test_browser.py; prints one JSON result line.
//
// Usage: node drive.mjs '<json>' with keys: url, userDataDir, home, hostname, screenshot, message,
// chromium (default /usr/bin/chromium), timeoutMs (default 20000).
// HOME is set for the browser process because Chromium on Linux reads trust from $HOME/.pki/nssdb.
import { chromium } from "playwright-core";

const opts = JSON.parse(process.argv[2]);
const timeout = opts.timeoutMs ?? 20000;
const result = { state: null, status: null, log: [], console: [], pageErrors: [], received: false };

const context = await chromium.launchPersistentContext(opts.userDataDir, {
  executablePath: opts.chromium ?? "/usr/bin/chromium",
  headless: true,
  env: { ...process.env, HOME: opts.home },
  viewport: { width: 1100, height: 1150 },
  // The machine's network is closed: background networking and QUIC only produce refused connections.
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
    // No hosts-file entry needed: resolve only the lab's name, inside this browser.
    `--host-resolver-rules=MAP ${opts.hostname} 127.0.0.1`,
  ],
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (msg) => result.console.push(`${msg.type()}: ${msg.text()}`));
  page.on("pageerror", (err) => result.pageErrors.push(String(err)));
  await page.goto(opts.url);
  await page.click("#connect");
  await page.waitForSelector('#status[data-state="connected"], #status[data-state="error"]', { timeout });
  result.state = await page.getAttribute("#status", "data-state");
  if (result.state === "connected") {
    await page.click("#subscribe");
    await page.waitForSelector(".entry.subscribed", { timeout });
    await page.fill("#pub-payload", opts.message);
    await page.click("#publish");
    try {
      await page.waitForFunction(
        (text) => [...document.querySelectorAll(".entry.received .text")].some((e) => e.textContent === text),
        opts.message,
        { timeout },
      );
      result.received = true;
    } catch {
      result.received = false;
    }
  }
  result.status = await page.textContent("#status");
  result.log = await page.$$eval(".entry", (items) => items.map((i) => i.textContent));
  await page.screenshot({ path: opts.screenshot, fullPage: true });
} finally {
  await context.close();
}
console.log(JSON.stringify(result));
