// Copy the front-end libraries from node_modules into the static folder the platform serves.
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const vendor = join(root, "src", "civic", "web", "static", "vendor");
const copies = {
  "leaflet/dist/leaflet.js": "leaflet/leaflet.js",
  "leaflet/dist/leaflet.css": "leaflet/leaflet.css",
  "leaflet/dist/images": "leaflet/images",
  "htmx.org/dist/htmx.min.js": "htmx/htmx.min.js",
  "swagger-ui-dist/swagger-ui-bundle.js": "swagger-ui/swagger-ui-bundle.js",
  "swagger-ui-dist/swagger-ui.css": "swagger-ui/swagger-ui.css",
};
rmSync(vendor, { recursive: true, force: true });
for (const [from, to] of Object.entries(copies)) {
  mkdirSync(dirname(join(vendor, to)), { recursive: true });
  cpSync(join(root, "node_modules", from), join(vendor, to), { recursive: true });
}
console.log(`vendor: ${Object.keys(copies).length} files into ${vendor}`);
