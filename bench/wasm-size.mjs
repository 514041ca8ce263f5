// Size profile of the Worker's wasm: raw and gzip size, what each section weighs, and code
// bytes per crate and per function, read from the binary's code and `name` sections.
//
// worker-build runs `wasm-opt -Oz … --debuginfo`, which keeps the `name` section; scripts/build.sh
// ships the wasm without it and keeps that named copy in target/wasm-names/, which carries every
// function's (demangled) Rust path. No extra build and no npm dependency is needed to attribute bytes.
//
//   node bench/wasm-size.mjs [path/to/file.wasm]     (default: target/wasm-names/index_bg.wasm)
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { reader, sections, withoutCustomSections } from "../scripts/lib/wasm.mjs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const DEFAULT_WASM = path.join(ROOT, "target/wasm-names/index_bg.wasm");

/** Every defined function: its index, body size in bytes and (from the name section) its name. */
export function functions(bytes) {
  const all = sections(bytes);
  let importedFunctions = 0;
  const importSection = all.find((s) => s.id === 2);
  if (importSection) {
    const r = reader(bytes, importSection.start);
    for (let n = r.u32(); n > 0; n--) {
      r.name();
      r.name();
      const kind = r.byte();
      if (kind === 0) {
        importedFunctions++;
        r.u32();
      } else if (kind === 1) { // table: reftype + limits
        r.byte();
        if (r.byte() & 1) { r.u32(); r.u32(); } else r.u32();
      } else if (kind === 2) { // memory: limits
        if (r.byte() & 1) { r.u32(); r.u32(); } else r.u32();
      } else if (kind === 3) { // global: valtype + mutability
        r.byte();
        r.byte();
      } else if (kind === 4) { // tag: attribute + type index
        r.byte();
        r.u32();
      } else {
        throw new Error(`unknown import kind ${kind}`);
      }
    }
  }
  const names = new Map();
  const nameSection = all.find((s) => s.id === 0 && s.name === "name");
  if (nameSection) {
    const r = reader(bytes, nameSection.start);
    r.name(); // "name"
    while (r.pos < nameSection.end) {
      const sub = r.byte();
      const size = r.u32();
      const end = r.pos + size;
      if (sub === 1) {
        for (let n = r.u32(); n > 0; n--) {
          const index = r.u32();
          names.set(index, r.name());
        }
      }
      r.pos = end;
    }
  }
  const code = all.find((s) => s.id === 10);
  const out = [];
  if (code) {
    const r = reader(bytes, code.start);
    const count = r.u32();
    for (let i = 0; i < count; i++) {
      const bodyStart = r.pos;
      const size = r.u32();
      r.pos += size;
      const index = importedFunctions + i;
      out.push({ index, size: r.pos - bodyStart, name: names.get(index) ?? `(unnamed #${index})` });
    }
  }
  return { functions: out, named: names.size > 0 };
}

/** A demangled Rust path without its `::h<hash>` suffix and `[crate disambiguator]`s. */
export function cleanName(name) {
  return name.replace(/::h[0-9a-f]{16}$/, "").replace(/\[[0-9a-f]{6,}\]/g, "");
}

// Self types that name no crate: primitives, slices, tuples, fn pointers, generic parameters.
const PRIMITIVE = /^(str|u8|u16|u32|u64|u128|usize|i8|i16|i32|i64|i128|isize|f32|f64|bool|char|\(|\[|fn\b|_$|[A-Z]\b)/;

/** The path that owns a function: for `<Type as Trait>::f` the type (or the trait when the type is a primitive or a slice). */
function owningPath(name) {
  if (!name.startsWith("<")) return name;
  let depth = 0;
  for (let i = 0; i < name.length; i++) {
    const c = name[i];
    if (c === "<") depth++;
    else if (c === ">") depth--;
    if (depth === 1 && name.startsWith(" as ", i)) {
      const self = name.slice(1, i).replace(/^(&mut |&|\*const |\*mut |dyn )+/, "");
      if (self.startsWith("<")) return owningPath(self);
      if (!PRIMITIVE.test(self)) return self;
      let j = i + 4, d = 1;
      while (j < name.length && d > 0) {
        if (name[j] === "<") d++;
        else if (name[j] === ">") d--;
        j++;
      }
      return name.slice(i + 4, j - 1);
    }
    if (depth === 0) {
      const self = name.slice(1, i).replace(/^(&mut |&|\*const |\*mut |dyn )+/, "");
      return PRIMITIVE.test(self) ? `core::${self}` : self;
    }
  }
  return name;
}

/**
 * The crate a function's bytes are charged to. Drop glue is charged to the dropped type's crate
 * (it exists because of that type); wasm-bindgen's generated shims and the allocator and
 * compiler builtins are named as such; everything else goes to its owning path's first segment.
 */
export function crateOf(rawName, depth = 1) {
  const name = cleanName(rawName);
  // An async entry point (fetch handler, Durable Object fetch/alarm) becomes a future that
  // wasm-bindgen-futures polls; LTO inlines our handlers into that closure's body.
  if (/^js_sys::futures::future_to_promise::/.test(name)) return "async entry points (handlers inlined)";
  if (/ shim$|^__wbindgen|^__wbg_|^__externref|^wasm_bindgen::__rt|^closure\d+ externref shim/.test(name)) return "wasm-bindgen (glue)";
  const drop = /^core::ptr::drop_in_place<(.*)>$/.exec(name);
  if (drop) {
    // Box<Order> is dropped because of Order: charge the first crate named outside std.
    const named = [...drop[1].matchAll(/(?:^|[^:\w])([a-z_][a-z0-9_]*)::/g)].map((m) => m[1]);
    const owner = named.find((c) => !["core", "alloc", "std"].includes(c));
    return owner ? crateOf(drop[1].slice(drop[1].indexOf(`${owner}::`)), depth) : crateOf(drop[1], depth);
  }
  if (name.startsWith("(unnamed")) return "(unnamed)";
  // A trait impl nested in a type path demangles with an unbalanced leading `<`.
  const owner = owningPath(name).replace(/^<+/, "");
  if (!owner.includes("::")) {
    if (/^(memcpy|memset|memmove|memcmp|bcmp|__rust_|__rdl_|__rg_|rust_|__multi3|__ashl|__lshr|__udiv|__umod|__div|__mod|__mul|__floatun)/.test(owner)) return "std runtime (alloc/builtins)";
    return "(other)";
  }
  const segments = owner.replace(/^_::/, "").split("::");
  const crate = segments[0].replace(/<.*$/, "");
  if (depth > 1 && /^tiktok_edge/.test(crate) && segments.length > 2) {
    return `${crate}::${segments[1].replace(/<.*$/, "")}`;
  }
  return crate;
}

/** Sums `functions` by `key(function)`, largest first. */
function sumBy(fns, key) {
  const totals = new Map();
  for (const f of fns) {
    const k = key(f);
    const t = totals.get(k) ?? { key: k, bytes: 0, functions: 0 };
    t.bytes += f.size;
    t.functions += 1;
    totals.set(k, t);
  }
  return [...totals.values()].sort((a, b) => b.bytes - a.bytes);
}

const gzipSize = (buf) => gzipSync(buf).length; // zlib's default level 6, as wrangler reports

/** The whole profile of one wasm file. */
export function profile(file = DEFAULT_WASM) {
  const bytes = readFileSync(file);
  const stripped = withoutCustomSections(bytes);
  const { functions: fns, named } = functions(bytes);
  const codeBytes = fns.reduce((n, f) => n + f.size, 0);
  return {
    file,
    raw: bytes.length,
    gzip: gzipSize(bytes),
    strippedRaw: stripped.length,
    strippedGzip: gzipSize(stripped),
    sections: sections(bytes).map(({ name, size, headerStart, end }) => ({ name, size, gzip: gzipSize(bytes.subarray(headerStart, end)) })),
    named,
    codeBytes,
    crates: sumBy(fns, (f) => crateOf(f.name)),
    ownModules: sumBy(fns.filter((f) => /^tiktok_edge/.test(crateOf(f.name))), (f) => crateOf(f.name, 2)),
    topFunctions: [...fns].sort((a, b) => b.size - a.size).slice(0, 30).map((f) => ({ ...f, name: cleanName(f.name) })),
  };
}

const kb = (n) => `${(n / 1000).toFixed(1)} kB`;
const pct = (n, total) => `${((100 * n) / total).toFixed(1)}%`;

/** The profile as text, for the terminal and BENCHMARKS.md. */
export function report(p, { topCrates = 25 } = {}) {
  const lines = [];
  lines.push(`wasm: ${p.file}`);
  lines.push(`  as built:                       ${p.raw.toLocaleString("en")} B raw, ${p.gzip.toLocaleString("en")} B gzip`);
  lines.push(`  without custom sections (name): ${p.strippedRaw.toLocaleString("en")} B raw, ${p.strippedGzip.toLocaleString("en")} B gzip`);
  const large = p.sections.filter((s) => s.size >= 10_000);
  lines.push("  large sections (gzip each compressed alone): " + large.map((s) => `${s.name} ${kb(s.size)} (gzip ${kb(s.gzip)})`).join(", "));
  if (!p.named) {
    lines.push("  (no name section: build with worker-build's default wasm-opt --debuginfo to attribute code)");
    return lines.join("\n");
  }
  // Per-crate gzip is estimated at the code section's own ratio: gzip cannot be split exactly.
  const code = p.sections.find((s) => s.name === "code");
  const ratio = code.gzip / code.size;
  lines.push(`  code by crate (function bodies, ${p.codeBytes.toLocaleString("en")} B; est. gzip at the code section's ratio ${(1 / ratio).toFixed(1)}x):`);
  for (const c of p.crates.slice(0, topCrates)) {
    lines.push(`    ${c.key.padEnd(38)} ${String(c.bytes).padStart(8)} B  ~${kb(c.bytes * ratio).padStart(8)} gzip  ${pct(c.bytes, p.codeBytes).padStart(6)}  ${String(c.functions).padStart(5)} fns`);
  }
  const rest = p.crates.slice(topCrates);
  if (rest.length) lines.push(`    ${`(${rest.length} more)`.padEnd(38)} ${String(rest.reduce((n, c) => n + c.bytes, 0)).padStart(8)} B`);
  lines.push("  our own code by module:");
  for (const m of p.ownModules) lines.push(`    ${m.key.padEnd(38)} ${String(m.bytes).padStart(8)} B`);
  lines.push("  top 30 functions:");
  for (const f of p.topFunctions) lines.push(`    ${String(f.size).padStart(7)} B  ${f.name.length > 150 ? `${f.name.slice(0, 147)}...` : f.name}`);
  return lines.join("\n");
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(report(profile(process.argv[2] ?? DEFAULT_WASM)));
}
