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

/** KEY=VALUE lines (# comments, optional quotes) of a settings file; none when it does not exist. */
export function readSettingsFile(file) {
  const values = {};
  if (existsSync(file)) {
    for (const line of readFileSync(file, "utf8").split("\n")) {
      const m = line.match(/^\s*([A-Z0-9_]+)\s*=\s*(.*?)\s*$/);
      if (m) values[m[1]] = m[2].replace(/^(["'])(.*)\1$/, "$2");
    }
  }
  return values;
}

/** The settings file's values, overridden by `env`. */
export function readSettings(env) {
  const values = readSettingsFile(settingsPath(env));
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

/**
 * The Worker's own judgement of `values` (setting name → string): core's check-settings
 * (crates/core/src/bin/check-settings.rs) prints the /tt/health report the Worker would give
 * with them, so no rule is written twice. Built on first use (cargo, a few seconds once).
 */
export function checkSettings(values) {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", 'source "$0" && exec cargo run -q -p tiktok-edge-core --bin check-settings', path.join(ROOT, "scripts/env.sh")], {
      cwd: ROOT, stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => { stdout += d; });
    child.stderr.on("data", (d) => { stderr += d; });
    child.on("error", reject);
    child.on("close", (code) => {
      let health;
      try { health = JSON.parse(stdout); } catch { /* reported below */ }
      if (code === 0 && health?.problems) return resolve(health);
      reject(new Problem(`the settings could not be checked (cargo run -p tiktok-edge-core --bin check-settings exited ${code}): ${stderr.trim().split("\n").slice(-5).join("\n")}`,
        "install Rust with rustup and run `bash scripts/setup.sh` once"));
    });
    child.stdin.end(JSON.stringify(values));
  });
}

/**
 * Questions at the terminal: `ask(question, { hidden })` resolves to the line typed. A hidden
 * answer (a secret) is read with the terminal's echo off, so it never shows on screen or in a
 * recording of it; from a pipe nothing is echoed anyway. `ask.close()` lets the process end.
 */
export function prompter({ input = process.stdin, output = process.stderr } = {}) {
  let buffer = "";
  let pending = null;
  let ended = false;
  const tty = Boolean(input.isTTY && input.setRawMode);
  const settle = (answer) => {
    const { resolve, reject, hidden } = pending;
    pending = null;
    input.pause();
    if (tty) input.setRawMode(false);
    if (hidden) output.write("\n");
    if (answer === null) reject(new Problem("stopped at the prompt", "run this again when ready"));
    else resolve(answer);
  };
  const drain = () => {
    if (!pending) return;
    for (let i = 0; i < buffer.length; i++) {
      const c = buffer[i];
      if (c === "\u0003") { buffer = ""; return settle(null); }
      if (c === "\r" || c === "\n") {
        const typed = buffer.slice(0, i);
        buffer = buffer.slice(i + (c === "\r" && buffer[i + 1] === "\n" ? 2 : 1));
        // Raw mode passes backspace through: apply it.
        return settle([...typed].reduce((line, ch) => (ch === "\u007f" || ch === "\b" ? line.slice(0, -1) : line + ch), ""));
      }
    }
    if (ended) { const rest = buffer; buffer = ""; settle(rest); }
  };
  let listening = false;
  const ask = (question, { hidden = false } = {}) => new Promise((resolve, reject) => {
    if (!listening) {
      // Only once asked: a listener would keep a non-interactive run reading stdin.
      listening = true;
      input.on("data", (chunk) => { buffer += chunk.toString("utf8"); drain(); });
      input.on("end", () => { ended = true; if (pending) drain(); });
    }
    pending = { resolve, reject, hidden };
    // Echo off before the question shows, so nothing typed after it is echoed.
    if (tty) input.setRawMode(hidden);
    output.write(question);
    input.resume();
    drain();
  });
  ask.close = () => { if (listening) input.pause(); };
  return ask;
}
