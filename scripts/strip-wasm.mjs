// Writes the wasm at argv[2] to argv[3] without its custom sections (function names, producers,
// target features): the release Worker ships without them, ~60 KB gzip that every cold start
// would pay. Dropping the sections as they are beats re-encoding with wasm-opt by 2.4 KB gzip.
import { readFileSync, writeFileSync } from "node:fs";
import { withoutCustomSections } from "./lib/wasm.mjs";

const [from, to] = process.argv.slice(2);
writeFileSync(to, withoutCustomSections(readFileSync(from)));
