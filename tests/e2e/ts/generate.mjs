// Types for the three services from the committed OpenAPI documents: node generate.mjs <openapi dir> <out dir>
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import openapiTS, { astToString } from "openapi-typescript";

const [source, target] = process.argv.slice(2);
if (!source || !target) {
  console.error("usage: node generate.mjs <openapi dir> <out dir>");
  process.exit(2);
}
mkdirSync(target, { recursive: true });
for (const service of ["intake", "evaluation", "monitoring"]) {
  const ast = await openapiTS(pathToFileURL(resolve(source, `${service}.json`)));
  writeFileSync(join(target, `${service}.d.ts`), astToString(ast));
}
