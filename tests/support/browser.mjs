// Real headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by
// playwright-core (which downloads no browser of its own). Each launch starts from an empty profile.
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";

export const CHROMIUM_PATH = "/usr/bin/chromium";

/** Launches Chromium; throws (so the test fails, never skips) when it is not installed. */
export async function launchChromium() {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`${CHROMIUM_PATH} is missing: run \`bash scripts/setup.sh\` (as root it installs Debian's chromium package; otherwise it prints the command)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}
