// The documentation stays true: every relative link of README.md and docs/*.md names a file that
// exists (and a heading of it, by GitHub's anchor rules), and every shell block meant to run
// locally runs. The marking rule (docs/architecture.md, "The documentation and its test"): a
// fenced block whose info string starts with `sh` is a command, and its second word says how:
//   sh          run with bash -euo pipefail from the repository root while the demo runs; exit 0
//   sh exit=N   the same, expecting exit code N
//   sh server   the local demo (scripts/dev.sh): started first, stopped after the last block
//   sh no-run   not run: needs an account or a live shop, takes many minutes, or is this suite itself
// Blocks marked bash, shell, console or zsh are refused, so every command is one of the four.
//
// The demo runs on free ports, not 8787/8788 (another demo may be running on the machine):
// `127.0.0.1:8787` in a block is rewritten to the test's port, and the server command gets the
// demo's settings (.dev.vars.example) as --var flags, so a customised .dev.vars changes nothing.
// Each block's environment: SCREENSHOT_OUT (a temporary file) and DEPLOY_ENV_FILE (an empty one),
// so no block rewrites a committed file or reads the developer's deploy secrets.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { ROOT, waitFor } from "./support/harness.mjs";

const FILES = ["README.md", ...readdirSync(path.join(ROOT, "docs")).filter((f) => f.endsWith(".md")).sort().map((f) => `docs/${f}`)];
const DOC_PORT = "127.0.0.1:8787"; // the demo's address as the documentation writes it
const REFUSED_LANGUAGES = new Set(["bash", "shell", "console", "zsh"]);

/** GitHub's anchor for a heading: the rendered text, lowercased, punctuation but `-`/`_` dropped, spaces to `-`. */
export function slug(heading) {
  const text = heading
    .replace(/`([^`]*)`/g, "$1") // code spans: their text
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1") // links and images: their text
    .replace(/(\*\*|__|\*)/g, "") // emphasis markers
    .replace(/<[^>]+>/g, ""); // inline HTML tags
  return text.trim().toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "").replace(/ /g, "-");
}

/** A markdown file's fenced blocks (with the info string and the line), headings' anchors and links. */
export function parseMarkdown(text) {
  const blocks = [];
  const anchors = new Set();
  const links = [];
  const seen = new Map();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const fence = /^(\s*)(`{3,}|~{3,})(.*)$/.exec(lines[i]);
    if (fence) {
      const [, indent, marker, info] = fence;
      const body = [];
      let j = i + 1;
      for (; j < lines.length && !lines[j].trimStart().startsWith(marker); j++) body.push(lines[j].startsWith(indent) ? lines[j].slice(indent.length) : lines[j]);
      assert.ok(j < lines.length, `an unclosed code fence at line ${i + 1}`);
      blocks.push({ info: info.trim(), code: body.join("\n"), line: i + 1 });
      i = j;
      continue;
    }
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(lines[i]);
    if (heading) {
      const base = slug(heading[1]);
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      anchors.add(n ? `${base}-${n}` : base);
    }
    const prose = lines[i].replace(/`[^`]*`/g, ""); // links inside code spans are not links
    for (const m of prose.matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) links.push({ target: m[1], line: i + 1 });
  }
  return { blocks, anchors, links };
}

const docs = Object.fromEntries(FILES.map((file) => [file, parseMarkdown(readFileSync(path.join(ROOT, file), "utf8"))]));

test("GitHub's anchors for headings", () => {
  assert.equal(slug("1. Put Cloudflare in front of Shopify (Orange-to-Orange)"), "1-put-cloudflare-in-front-of-shopify-orange-to-orange");
  assert.equal(slug("Health says `misconfigured` (503)"), "health-says-misconfigured-503");
  assert.equal(slug("`SHOPIFY_SHOP_DOMAIN` is required for webhooks"), "shopify_shop_domain-is-required-for-webhooks");
  assert.equal(slug("The checkout pixel's permissions"), "the-checkout-pixels-permissions");
  const { anchors } = parseMarkdown("# A\n## A\n```sh\n# A\n```\n### A!\n");
  assert.deepEqual([...anchors], ["a", "a-1", "a-2"], "repeated headings are numbered; a comment in a code block is no heading");
});

test("every relative link names a file that exists, and its #anchor a heading of it", () => {
  const broken = [];
  for (const [file, { links }] of Object.entries(docs)) {
    for (const { target, line } of links) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: …
      const [pathPart, anchor] = target.split("#");
      const resolved = pathPart ? path.normalize(path.join(path.dirname(file), decodeURI(pathPart))) : file;
      const where = `${file}:${line} → ${target}`;
      if (resolved.startsWith("..") || !existsSync(path.join(ROOT, resolved))) {
        broken.push(`${where}: no file ${resolved}`);
        continue;
      }
      if (anchor === undefined) continue;
      const anchors = docs[resolved]?.anchors ?? (resolved.endsWith(".md") ? parseMarkdown(readFileSync(path.join(ROOT, resolved), "utf8")).anchors : null);
      if (!anchors) broken.push(`${where}: ${resolved} is not markdown, it has no headings`);
      else if (!anchors.has(anchor)) broken.push(`${where}: ${resolved} has no heading #${anchor}`);
    }
  }
  assert.deepEqual(broken, []);
});

/** Every command block in reading order, with how the test treats it. */
const commands = FILES.flatMap((file) => docs[file].blocks.map((block) => ({ file, ...block }))).flatMap((block) => {
  const [language, mode, ...rest] = block.info.split(/\s+/);
  const where = `${block.file}:${block.line}`;
  if (REFUSED_LANGUAGES.has(language)) return [{ ...block, where, problem: `\`${language}\` block: mark it \`sh\`, \`sh exit=N\`, \`sh server\` or \`sh no-run\`` }];
  if (language !== "sh") return [];
  const exit = /^exit=(\d+)$/.exec(mode ?? "");
  const kind = mode === undefined ? "run" : exit ? "run" : mode;
  if (rest.length || !["run", "server", "no-run"].includes(kind)) return [{ ...block, where, problem: `unknown marking \`${block.info}\`` }];
  return [{ ...block, where, kind, expectExit: exit ? Number(exit[1]) : 0 }];
});

test("every command block is marked sh, sh exit=N, sh server or sh no-run", () => {
  assert.deepEqual(commands.filter((c) => c.problem).map((c) => `${c.where}: ${c.problem}`), []);
  const servers = new Set(commands.filter((c) => c.kind === "server").map((c) => c.code.trim()));
  assert.equal(servers.size, 1, `one server command, the local demo: ${[...servers].join(" | ")}`);
  assert.ok(commands.some((c) => c.kind === "run"), "there are blocks to run");
});

/** A free TCP port on 127.0.0.1. */
const freePort = () => new Promise((resolve, reject) => {
  const server = net.createServer().listen(0, "127.0.0.1", () => {
    const { port } = server.address();
    server.close(() => resolve(port));
  }).on("error", reject);
});

/** The demo's settings: the KEY=value lines of .dev.vars.example. */
const demoSettings = () => readFileSync(path.join(ROOT, ".dev.vars.example"), "utf8").split("\n")
  .map((line) => /^([A-Z0-9_]+)=(.*)$/.exec(line.trim())).filter(Boolean).map(([, k, v]) => [k, v]);

let scratch, server, serverLog, port, savedBuild;

before(async () => {
  scratch = mkdtempSync(path.join(os.tmpdir(), "tt-docs-"));
  writeFileSync(path.join(scratch, "deploy.env"), "");
});

after(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((resolve) => server.once("exit", resolve));
    process.kill(-server.pid, "SIGTERM"); // the whole group: dev.sh, the demo origin, wrangler, workerd
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    try { process.kill(-server.pid, "SIGKILL"); } catch { /* already gone */ }
  }
  // wrangler dev builds the dev profile into build/; the other end-to-end tests load the release build.
  if (savedBuild) {
    rmSync(path.join(ROOT, "build"), { recursive: true, force: true });
    cpSync(savedBuild, path.join(ROOT, "build"), { recursive: true });
  }
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** Starts the server block on free ports with the demo's settings; resolves once /tt/health answers. */
async function startServer(command) {
  port = await freePort();
  const originPort = await freePort();
  const inspectorPort = await freePort();
  if (existsSync(path.join(ROOT, "build"))) {
    savedBuild = path.join(scratch, "build");
    cpSync(path.join(ROOT, "build"), savedBuild, { recursive: true });
  }
  const vars = demoSettings().map(([k, v]) => (k === "ORIGIN_URL" ? [k, `http://127.0.0.1:${originPort}`] : [k, v]));
  const flags = [...vars.flatMap(([k, v]) => ["--var", `${k}:${v}`]), "--inspector-port", String(inspectorPort)];
  serverLog = path.join(scratch, "server.log");
  const out = openSync(serverLog, "w");
  server = spawn("bash", ["-c", `${command} "$@"`, "docs-server", ...flags], {
    cwd: ROOT, detached: true, stdio: ["ignore", out, out],
    env: { ...process.env, PORT: String(port), DEMO_ORIGIN_PORT: String(originPort), WORKER_URL: `http://127.0.0.1:${port}` },
  });
  const tail = () => readFileSync(serverLog, "utf8").split("\n").slice(-30).join("\n");
  await waitFor(`${command} to answer /tt/health on port ${port}`, async () => {
    if (server.exitCode !== null) throw new Error(`${command} exited with ${server.exitCode}:\n${tail()}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/tt/health`);
      return (await res.json()).status !== undefined;
    } catch {
      return false;
    }
  }, 15 * 60_000); // the first run on a machine builds the dev profile
}

test("every shell block runs as written (against the local demo)", async (t) => {
  const runnable = commands.filter((c) => !c.problem && c.kind !== "no-run");
  const serverBlock = runnable.find((c) => c.kind === "server");
  await t.test(`${serverBlock.where}: ${serverBlock.code.trim()}`, () => startServer(serverBlock.code.trim()));
  for (const block of runnable.filter((c) => c.kind === "run")) {
    // The demo's second hostname (its fr storefront) is the same Worker.
    const code = block.code.replaceAll(DOC_PORT, `127.0.0.1:${port}`).replaceAll("localhost:8787", `localhost:${port}`);
    await t.test(`${block.where}: ${block.code.split("\n")[0]}`, () => {
      const run = spawnSync("bash", ["-euo", "pipefail", "-c", code], {
        cwd: ROOT, encoding: "utf8", timeout: 10 * 60_000,
        env: { ...process.env, SCREENSHOT_OUT: path.join(scratch, "admin.png"), DEPLOY_ENV_FILE: path.join(scratch, "deploy.env") },
      });
      assert.equal(run.status, block.expectExit, `${block.where} exited ${run.status ?? run.signal}, expected ${block.expectExit}\n--- stdout\n${run.stdout.slice(-3000)}\n--- stderr\n${run.stderr.slice(-3000)}`);
    });
  }
});
