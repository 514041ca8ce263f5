// Reading a wasm binary's sections, shared by the release build (scripts/strip-wasm.mjs) and
// the size profile (bench/wasm-size.mjs).

const SECTION_NAMES = ["custom", "type", "import", "function", "table", "memory", "global", "export", "start", "element", "code", "data", "datacount", "tag"];

/** The byte reader of a wasm binary: LEB128 integers and length-prefixed names. */
export function reader(bytes, start = 0) {
  let pos = start;
  const r = {
    get pos() { return pos; },
    set pos(p) { pos = p; },
    byte: () => bytes[pos++],
    u32() {
      let result = 0, shift = 0, b;
      do {
        b = bytes[pos++];
        result += (b & 0x7f) * 2 ** shift;
        shift += 7;
      } while (b & 0x80);
      return result;
    },
    name() {
      const len = r.u32();
      const s = Buffer.from(bytes.buffer, bytes.byteOffset + pos, len).toString("utf8");
      pos += len;
      return s;
    },
  };
  return r;
}

/** Top-level sections: id, name (custom sections by their own name), payload offset and size. */
export function sections(bytes) {
  if (bytes.readUInt32LE(0) !== 0x6d736100) throw new Error("not a wasm binary (bad magic)");
  const r = reader(bytes, 8);
  const out = [];
  while (r.pos < bytes.length) {
    const headerStart = r.pos;
    const id = r.byte();
    const size = r.u32();
    const start = r.pos;
    const name = id === 0 ? r.name() : SECTION_NAMES[id] ?? `unknown ${id}`;
    out.push({ id, name, headerStart, start, end: start + size, size: start + size - headerStart });
    r.pos = start + size;
  }
  return out;
}

/** The wasm without its custom sections (names, producers, target features): what it would ship as if stripped. */
export function withoutCustomSections(bytes) {
  const kept = sections(bytes).filter((s) => s.id !== 0).map((s) => bytes.subarray(s.headerStart, s.end));
  return Buffer.concat([bytes.subarray(0, 8), ...kept]);
}
