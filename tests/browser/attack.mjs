// A web page from another origin that tries to read and change the lab's Amlen admin API with fetch, as any
// site the developer has open could (issue 22). For tests/test_admin_browser.py; prints one JSON result line.
//
// Usage: node attack.mjs '<json>' with keys: url (the attacker's page), userDataDir, home, chromium,
// timeoutMs (default 20000). The page itself does the fetches; this script only opens it and reads #result.
import { chromium } from "playwright-core";

const opts = JSON.parse(process.argv[2]);
const context = await chromium.launchPersistentContext(opts.userDataDir, {
  executablePath: opts.chromium ?? "/usr/bin/chromium",
  headless: true,
  env: { ...process.env, HOME: opts.home },
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
let result;
try {
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(opts.url);
  await page.waitForSelector("body[data-done]", { timeout: opts.timeoutMs ?? 20000 });
  result = JSON.parse(await page.textContent("#result"));
} finally {
  await context.close();
}
console.log(JSON.stringify(result));
