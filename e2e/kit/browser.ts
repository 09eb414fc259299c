// A headless Chromium for page tests, driven by playwright-core: Debian's chromium at
// /usr/bin/chromium (CHROMIUM_BIN overrides it); `make e2e-browser` installs it where missing.
import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** Where page tests save screenshots (git-ignored). */
export const SCREENSHOT_DIR = new URL('../../../e2e/out/', import.meta.url);

/** The browser binary the tests drive. */
export const chromiumBin = (): string => process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

/** Whether a browser is installed here. */
export const haveChromium = (): boolean => existsSync(chromiumBin());

/** Launches headless Chromium; the caller closes it (in an after hook, so a failing test does not leak it). */
export async function launchBrowser(): Promise<Browser> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  // As root (CI) Chromium refuses to start with its sandbox; the pages it loads are our own, on loopback.
  const args = process.getuid?.() === 0 ? ['--no-sandbox'] : [];
  return chromium.launch({ executablePath: chromiumBin(), headless: true, args, timeout: 30_000 });
}
