// A secret written to a file only its owner can read: created under a temporary name with mode 0600, then linked to
// its final name, which fails when that name exists (a rename would replace it silently), so a reader never sees a
// half-written file and an earlier secret is never lost.
import { linkSync, unlinkSync, writeFileSync } from "node:fs";

export class SecretFileExists extends Error {}

export function writeSecretFile(path, text) {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600, flag: "wx" }); // wx: never through an existing file or link
  try {
    linkSync(tmp, path);
  } catch (e) {
    if (e.code === "EEXIST") throw new SecretFileExists(`${path} already exists: move it away or name another file`);
    throw e;
  } finally {
    unlinkSync(tmp);
  }
}
