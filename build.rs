//! The storefront and checkout scripts (`assets/*.js`) as the Worker carries them: every byte of
//! the wasm is paid at each isolate start, so blank lines, indentation and the lines that are
//! only a `//` comment are left out; each remaining line stays a line, so the script means the
//! same. The opening comment of each file (what it is; for the checkout pixel, where to paste
//! it) is kept, and `assets/` stays the readable source.

use std::path::Path;

fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    for name in ["pixel.js", "custom-pixel.js"] {
        let source = Path::new("assets").join(name);
        println!("cargo:rerun-if-changed={}", source.display());
        let text = std::fs::read_to_string(&source).expect("assets/*.js is readable");
        let mut compact = String::with_capacity(text.len());
        let mut header = true;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let comment = line.starts_with("//");
            header = header && (comment || line.starts_with("/*") || line.starts_with('*'));
            if comment && !header {
                continue;
            }
            compact.push_str(line);
            compact.push('\n');
        }
        std::fs::write(Path::new(&out).join(name), compact).expect("OUT_DIR is writable");
    }
}
