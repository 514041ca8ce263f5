// wrangler.toml as text: the few edits deploy makes to it (each returns the new text, the same
// text when nothing differs), and reading its [vars]. No TOML library: the file's shape is ours.
import { Problem } from "./cli.mjs";

/** The `id` of the SESSIONS KV namespace entry set to `id`. */
export function withKvId(toml, id) {
  const block = /(\[\[kv_namespaces\]\][^[]*?binding\s*=\s*"SESSIONS"[^[]*?\bid\s*=\s*")[^"]*(")/;
  if (!block.test(toml)) {
    throw new Problem("wrangler.toml has no [[kv_namespaces]] entry with binding = \"SESSIONS\" and an id",
      "restore it: `git checkout wrangler.toml`, then run this again");
  }
  return toml.replace(block, `$1${id}$2`);
}

/** The top-level `routes`, one inline table per `{ pattern, zone }` (replacing any there). */
export function withRoutes(toml, routes) {
  const line = `routes = [${routes.map((r) => `{ pattern = "${r.pattern}", zone_name = "${r.zone}" }`).join(", ")}]`;
  const existing = /^routes[ \t]*=[ \t]*\[[^\]]*\][ \t]*$/m; // also a multi-line array of inline tables without ']' inside
  if (existing.test(toml)) return toml.replace(existing, line);
  // Top-level keys must come before the first [table].
  return toml.replace(/^compatibility_date\s*=.*$/m, (m) => `${m}\n${line}`);
}

const VARS_SECTION = /^\[vars\][^\n]*\n([\s\S]*?)(?=^\[|(?![\s\S]))/m;

/** The [vars] of wrangler.toml as strings (`NAME = "value"`, `NAME = 'value'`, `NAME = true`). */
export function varsOf(toml) {
  const section = toml.match(VARS_SECTION);
  const vars = {};
  for (const line of (section?.[1] ?? "").split("\n")) {
    const m = line.match(/^\s*([A-Za-z0-9_]+)\s*=\s*("(?:[^"\\]|\\.)*"|'[^']*'|[^\s#]+)/);
    if (!m) continue;
    const raw = m[2];
    vars[m[1]] = raw.startsWith('"') ? JSON.parse(raw) : raw.startsWith("'") ? raw.slice(1, -1) : raw;
  }
  return vars;
}

/** `name = "value"` under [vars]. */
export function withVar(toml, name, value) {
  const section = toml.match(VARS_SECTION);
  if (!section) return toml.replace(/\s*$/, `\n\n[vars]\n${name} = ${JSON.stringify(value)}\n`);
  const start = section.index + section[0].length - section[1].length;
  const body = section[1];
  const entry = new RegExp(`^${name}\\s*=.*$`, "m");
  const next = entry.test(body) ? body.replace(entry, `${name} = ${JSON.stringify(value)}`) : `${name} = ${JSON.stringify(value)}\n${body}`;
  return toml.slice(0, start) + next + toml.slice(start + body.length);
}

/** The whole [vars] section replaced by `vars`, in their order. */
export function withVarsOnly(toml, vars) {
  const body = Object.entries(vars).map(([k, v]) => `${k} = ${JSON.stringify(v)}\n`).join("");
  const section = toml.match(VARS_SECTION);
  if (!section) return `${toml.replace(/\s*$/, "\n")}\n[vars]\n${body}`;
  const start = section.index + section[0].length - section[1].length;
  return `${toml.slice(0, start)}${body}\n${toml.slice(start + section[1].length)}`;
}

/** The top-level `key = "value"` (name, main). */
export const withTopLevel = (toml, key, value) => toml.replace(new RegExp(`^${key}\\s*=.*$`, "m"), `${key} = ${JSON.stringify(value)}`);

/** Without the [build] table (its keys, up to the next table or comment block). */
export const withoutBuild = (toml) => toml.replace(/^\[build\][^\n]*\n(?:[^\n[#][^\n]*\n|\n)*/m, "");

/** The namespace_id of the [[ratelimits]] entry named `binding`. */
export const withRateLimitId = (toml, binding, id) =>
  toml.replace(new RegExp(`(\\[\\[ratelimits\\]\\]\\s*\\nname\\s*=\\s*"${binding}"\\s*\\nnamespace_id\\s*=\\s*")[^"]*(")`), `$1${id}$2`);
