// The one command for the console's generated client code: `npm run generate` (`-- --check` in CI).
//
// Reads the gateway's committed descriptor set (src/odin/gateway/odin.protoset, itself written by
// tools/generate.py from protos/) and runs protoc (from the venv's grpcio-tools) with protoc-gen-es,
// writing TypeScript messages and service descriptors to src/gen/. With --check it generates into a
// temporary directory and fails when src/gen differs, so stale generated code fails CI.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, cpSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ui = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const root = resolve(ui, "..");
const protoset = join(root, "src/odin/gateway/odin.protoset");
const outDir = join(ui, "src/gen");
const files = [
  "odin/auth/v1/auth.proto",
  "odin/scheduler/v1/scheduler.proto",
  "odin/pipelines/v1/pipelines.proto",
  "odin/midgard/v1/midgard.proto",
  "google/rpc/error_details.proto",
  "google/api/annotations.proto",
  "google/api/http.proto",
  "google/api/field_behavior.proto",
];
const python = process.env.PYTHON ?? (existsSync(join(root, ".venv/bin/python")) ? join(root, ".venv/bin/python") : "python3");
const plugin = join(ui, "node_modules/.bin/protoc-gen-es");

function generate(out) {
  mkdirSync(out, { recursive: true });
  execFileSync(python, ["-m", "grpc_tools.protoc", `--descriptor_set_in=${protoset}`, `--plugin=protoc-gen-es=${plugin}`,
    `--es_out=${out}`, "--es_opt=target=ts,import_extension=none", ...files], { stdio: "inherit" });
}

function walk(dir) {
  const found = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...walk(path));
    else found.push(path);
  }
  return found;
}

if (process.argv.includes("--check")) {
  const tmp = mkdtempSync(join(tmpdir(), "odin-ui-gen-"));
  try {
    generate(tmp);
    const fresh = walk(tmp).map((p) => relative(tmp, p)).sort();
    const committed = existsSync(outDir) ? walk(outDir).map((p) => relative(outDir, p)).sort() : [];
    const stale = [...new Set([...fresh, ...committed])].filter((name) =>
      !fresh.includes(name) || !committed.includes(name) ||
      !readFileSync(join(tmp, name)).equals(readFileSync(join(outDir, name))));
    if (stale.length) {
      console.error(`ui/src/gen is stale (${stale.join(", ")}); run \`npm run generate\` in ui/`);
      process.exit(1);
    }
    console.log("ui/src/gen is current");
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
} else {
  const tmp = mkdtempSync(join(tmpdir(), "odin-ui-gen-"));
  generate(tmp);
  rmSync(outDir, { recursive: true, force: true });
  cpSync(tmp, outDir, { recursive: true });
  rmSync(tmp, { recursive: true, force: true });
  console.log(`generated ${walk(outDir).length} files in ui/src/gen`);
}
