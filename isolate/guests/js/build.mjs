// Builds handler.js into a component with componentize-js's programmatic API (the
// `jco componentize` CLI fails here). StarlingMonkey exports wasi:http@0.2.10, so the WIT
// is the vendored WASI WIT with its version set to 0.2.10.
// Usage: node build.mjs WIT_DIR OUT.wasm
import { componentize } from "@bytecodealliance/componentize-js";
import { writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const [witPath, out] = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));
const { component } = await componentize({
  sourcePath: join(here, "handler.js"),
  witPath,
  worldName: "breakwater:guests/http-handler",
});
await writeFile(out, component);
console.log(`wrote ${out} (${component.length} bytes)`);
