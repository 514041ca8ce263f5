// Shared by scripts/deploy.mjs and scripts/doctor.mjs: operator-facing failures, the settings
// file, HTTP with a timeout, and the one way to run wrangler.
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** A failure the operator can act on: what went wrong, and how to fix it. */
export class Problem extends Error {
  constructor(message, fix) {
    super(message);
    this.fix = fix;
  }
}

/** Prints a Problem (or any error) the same way in every script. */
export function report(error, log = console.error) {
  if (error instanceof Problem) {
    log(`✗ ${error.message}`);
    if (error.fix) log(`  fix: ${error.fix}`);
  } else {
    log(`✗ ${error?.stack ?? error}`);
  }
}

/** The settings file both scripts read: DEPLOY_ENV_FILE, else .deploy.env in the project root. */
export const settingsPath = (env) => env.DEPLOY_ENV_FILE || path.join(ROOT, ".deploy.env");

/** KEY=VALUE lines (# comments, optional quotes) of the settings file, overridden by `env`. */
export function readSettings(env) {
  const file = settingsPath(env);
  const values = {};
  if (existsSync(file)) {
    for (const line of readFileSync(file, "utf8").split("\n")) {
      const m = line.match(/^\s*([A-Z0-9_]+)\s*=\s*(.*?)\s*$/);
      if (m) values[m[1]] = m[2].replace(/^(["'])(.*)\1$/, "$2");
    }
  }
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== "") values[k] = v;
  return values;
}

/** fetch with a deadline; a network failure becomes a Problem naming the URL. */
export async function request(url, init = {}, { timeoutMs = 15_000, what = url } = {}) {
  try {
    return await fetch(url, { redirect: "manual", ...init, signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    throw new Problem(`${what} could not be reached (${e.cause?.code ?? e.name}: ${e.cause?.message ?? e.message})`,
      `check the address and the network; ${url}`);
  }
}

/**
 * Runs wrangler through scripts/env.sh's `wrangler` function (the one place that knows how to
 * start it on Node 20), returning { code, stdout, stderr }; `echo` also prints its output.
 * No stdin: wrangler then never waits on a prompt.
 */
export function wranglerRunner({ echo = false } = {}) {
  return (args) => new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", 'source "$0" && wrangler "$@"', path.join(ROOT, "scripts/env.sh"), ...args], {
      cwd: ROOT, env: { WRANGLER_SEND_METRICS: "false", ...process.env }, stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => { stdout += d; if (echo) process.stderr.write(d); });
    child.stderr.on("data", (d) => { stderr += d; if (echo) process.stderr.write(d); });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** True when `main` is the module Node was started with (the CLI entry of a script). */
export const isMain = (meta) => process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(meta.url);
