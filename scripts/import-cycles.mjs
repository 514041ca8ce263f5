#!/usr/bin/env node
// Prints the import cycles of core (crates/core/src) and of the shell (src): one line per
// cycle (a strongly connected component of two or more files, or a file importing itself is
// not counted), then a count. Exit status 1 when any cycle is found.
//
// A file is a node (`shopify/mod.rs` is `shopify`). An edge is every path a file names
// outside its tests: `crate::a::b` (in `use` lines and inline), `super::x`, and a child
// module's path in its parent (`models::Cart` in `shopify/mod.rs`). Not edges: a `mod x;`
// declaration, and a submodule naming its own parent or an ancestor (`super::Topic`): a
// folder's files are read as the one module they make up. Test code (`#[cfg(test)]` items,
// `tests.rs` files) is skipped, so a cycle through test code only is not reported.
//
// Usage: node scripts/import-cycles.mjs [--edges]
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const ROOT = new URL("..", import.meta.url).pathname;
const showEdges = process.argv.includes("--edges");

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return files(path);
    return name.endsWith(".rs") ? [path] : [];
  });
}

// `shopify/mapping/mod.rs` -> `shopify::mapping`; `lib.rs` -> `crate`.
function moduleOf(rel) {
  const parts = rel.replace(/\.rs$/, "").split("/");
  if (parts.at(-1) === "mod") parts.pop();
  if (parts.length === 1 && parts[0] === "lib") return "crate";
  return parts.join("::");
}

// The code with comments, string and char literals blanked, and `#[cfg(test)]` items cut.
function code(text) {
  let out = "";
  for (let i = 0; i < text.length; ) {
    const rest = text.slice(i, i + 3);
    if (rest.startsWith("//")) {
      while (i < text.length && text[i] !== "\n") i++;
    } else if (rest.startsWith("/*")) {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? text.length : end + 2;
    } else if (/^r#*"/.test(text.slice(i, i + 10)) && !/\w/.test(text[i - 1] ?? "")) {
      const hashes = text.slice(i + 1).match(/^#*/)[0];
      const end = text.indexOf('"' + hashes, i + 2 + hashes.length);
      i = end < 0 ? text.length : end + 1 + hashes.length;
      out += '""';
    } else if (text[i] === '"') {
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
      i++;
      out += '""';
    } else if (/^'(\\.|[^\\'])'/.test(text.slice(i, i + 4)) || /^'\\u\{/.test(rest + text[i + 3])) {
      const end = text.indexOf("'", i + 2);
      i = end + 1;
      out += "' '";
    } else {
      out += text[i++];
    }
  }
  // Cut each `#[cfg(test)]` item: up to the end of its braces, or its `;`.
  let cut = "";
  for (let i = 0; i < out.length; ) {
    const at = out.indexOf("#[cfg(test)]", i);
    if (at < 0) {
      cut += out.slice(i);
      break;
    }
    cut += out.slice(i, at);
    let j = at + "#[cfg(test)]".length;
    while (j < out.length && out[j] !== "{" && out[j] !== ";") j++;
    if (out[j] === "{") {
      let depth = 0;
      for (; j < out.length; j++) {
        if (out[j] === "{") depth++;
        if (out[j] === "}" && --depth === 0) break;
      }
    }
    i = j + 1;
  }
  return cut;
}

// Expands `a::{b, c::{d, self}}` into `a::b`, `a::c::d`, `a::c`.
function expand(path) {
  const open = path.indexOf("{");
  if (open < 0) return [path.replace(/::self$/, "").replace(/\s+as\s+\w+$/, "")];
  const head = path.slice(0, open);
  const inner = path.slice(open + 1, path.lastIndexOf("}"));
  const items = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i <= inner.length; i++) {
    if (inner[i] === "{") depth++;
    if (inner[i] === "}") depth--;
    if ((inner[i] === "," && depth === 0) || i === inner.length) {
      const item = inner.slice(start, i).trim();
      if (item) items.push(item);
      start = i + 1;
    }
  }
  return items.flatMap((item) => expand(head + item));
}

function graph(dir) {
  const mods = new Map();
  for (const path of files(dir)) {
    const mod = moduleOf(relative(dir, path));
    if (mod.split("::").at(-1) !== "tests") mods.set(mod, code(readFileSync(path, "utf8")));
  }
  const resolve = (segments) => {
    for (let n = segments.length; n > 0; n--) {
      const name = segments.slice(0, n).join("::");
      if (mods.has(name)) return name;
    }
    return null;
  };
  const edges = new Map();
  for (const [mod, text] of mods) {
    const own = mod === "crate" ? [] : mod.split("::");
    const targets = new Set();
    const add = (segments) => {
      const target = resolve(segments);
      const ancestor = target && mod.startsWith(target + "::");
      if (target && target !== mod && target !== "crate" && !ancestor) targets.add(target);
    };
    const paths = [];
    for (const m of text.matchAll(/\buse\s+([^;]+);/g)) paths.push(...expand(m[1].replace(/\s+/g, " ")));
    for (const m of text.matchAll(/(?<![\w:])((?:crate|super)(?:::\w+)+)/g)) paths.push(m[1]);
    // A child module named by its own path (`models::Cart` in its parent).
    for (const m of text.matchAll(/(?<![\w:])(\w+)::\w+/g)) {
      if (mods.has([...own, m[1]].join("::"))) paths.push([...own, m[1]].join("::"));
    }
    for (const path of paths) {
      const segments = path.split("::").map((s) => s.trim());
      if (segments[0] === "crate") add(segments.slice(1));
      else if (segments[0] === "super") {
        let base = own;
        let k = 0;
        while (segments[k] === "super") {
          base = base.slice(0, -1);
          k++;
        }
        add([...base, ...segments.slice(k)]);
      } else if (mods.has([...own, segments[0]].join("::"))) add([...own, ...segments]);
    }
    edges.set(mod, targets);
  }
  return edges;
}

// Tarjan's strongly connected components.
function cycles(edges) {
  let index = 0;
  const stack = [];
  const on = new Set();
  const idx = new Map();
  const low = new Map();
  const found = [];
  const visit = (v) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const component = [];
      let w;
      do {
        w = stack.pop();
        on.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of [...edges.keys()].sort()) if (!idx.has(v)) visit(v);
  return found;
}

let total = 0;
for (const [name, dir] of [
  ["core", "crates/core/src"],
  ["shell", "src"],
]) {
  const edges = graph(join(ROOT, dir));
  const count = [...edges.values()].reduce((n, t) => n + t.size, 0);
  if (showEdges) for (const [from, to] of edges) console.log(`${name}: ${from} -> ${[...to].sort().join(", ")}`);
  const found = cycles(edges);
  total += found.length;
  console.log(`${name} (${dir}): ${edges.size} files, ${count} import edges, ${found.length} cycle(s)`);
  for (const component of found) console.log(`  cycle: ${component.join(" <-> ")}`);
}
process.exit(total > 0 ? 1 : 0);
