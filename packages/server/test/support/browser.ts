import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { ADMIN_KEY } from "@tidings/testkit/service";

/**
 * The console's pages in Debian's Chromium (headless, driven by playwright-core; console.test.ts
 * installs it when missing). TIDINGS_SCREENSHOTS=1 saves the pages to docs/screenshots/.
 */
export const CHROMIUM = process.env.TIDINGS_CHROMIUM ?? "/usr/bin/chromium";
const SCREENSHOTS = fileURLToPath(new URL("../../../../docs/screenshots/", import.meta.url));
const TAKE_SCREENSHOTS = process.env.TIDINGS_SCREENSHOTS === "1";

/** A describe's `skip`: why the browser tests cannot run here, or false. */
export const withoutChromium = (): string | false => (existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (console.test.ts installs it)`);

export interface AdminConsole {
  browser: Browser;
  page: Page;
  /** Saves the page as docs/screenshots/<name>.png when TIDINGS_SCREENSHOTS=1. */
  shot(name: string): Promise<void>;
}

/** A new page in `browser`, in a context of its own signed in to the service's console with `key`, 1280×800. */
export async function signedInPage(browser: Browser, serviceUrl: string, key: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(30_000);
  assert.equal((await context.request.post(`${serviceUrl}/v1/session`, { data: { key } })).status(), 201);
  return context.newPage();
}

/** A browser page signed in to the service's console with the admin key, 1280×800. */
export async function adminConsole(serviceUrl: string): Promise<AdminConsole> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  const page = await signedInPage(browser, serviceUrl, ADMIN_KEY);
  return {
    browser,
    page,
    shot: async (name) => {
      if (TAKE_SCREENSHOTS) await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
    },
  };
}
