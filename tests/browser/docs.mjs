// Drives Debian's Chromium through the built documentation site for tests/test_docs.py; prints one JSON line.
//
// Usage: node docs.mjs '<json>' with keys: url (the site's home page), navText (a primary navigation link's text),
// screenshot, chromium (default /usr/bin/chromium), timeoutMs (default 20000).
// Material renders each Mermaid diagram into a *closed* shadow root, which no selector can reach: an init script
// keeps a reference to every shadow root the page attaches (the page itself still gets its closed root).
import { chromium } from "playwright-core";

const opts = JSON.parse(process.argv[2]);
const timeout = opts.timeoutMs ?? 20000;
const result = { diagrams: [], pageErrors: [], foreignRequests: [], before: null, after: null };

const browser = await chromium.launch({
  executablePath: opts.chromium ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const origin = new URL(opts.url).origin;
  page.on("pageerror", (err) => result.pageErrors.push(String(err)));
  page.on("request", (req) => {
    const url = req.url();
    if (!url.startsWith(origin) && !url.startsWith("data:")) result.foreignRequests.push(url);
  });
  await page.addInitScript(() => {
    window.__shadowRoots = [];
    const attach = Element.prototype.attachShadow;
    Element.prototype.attachShadow = function (init) {
      const root = attach.call(this, init);
      window.__shadowRoots.push({ host: this, root });
      return root;
    };
  });
  const where = async () => ({
    url: page.url(), title: await page.title(),
    h1: (await page.locator("article h1").first().evaluate((h) => h.firstChild.textContent)).trim(),
  });
  await page.goto(opts.url);
  await page.waitForFunction(() => window.__shadowRoots.some(({ root }) => root.querySelector("svg g")), null,
                             { timeout });
  result.diagrams = await page.evaluate(() => window.__shadowRoots
    .filter(({ host }) => host.classList.contains("mermaid"))
    .map(({ host, root }) => {
      const svg = root.querySelector("svg");
      const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
      const labels = [...root.querySelectorAll(".nodeLabel, .edgeLabel, .cluster-label")].map((e) => e.textContent);
      return { svg: Boolean(svg), width: box.width, height: box.height, labels };
    }));
  result.before = await where();
  await page.screenshot({ path: opts.screenshot, fullPage: false });
  const link = page.locator("nav.md-nav--primary a.md-nav__link", { hasText: opts.navText }).first();
  await Promise.all([page.waitForURL((url) => url.href !== opts.url, { timeout }), link.click()]);
  await page.waitForLoadState("load");
  result.after = await where();
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
