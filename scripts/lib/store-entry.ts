// The worker's own storage code for the Node tools (bundled by scripts/lib/local-store.mjs): the local seed and
// `scripts/py publish --local` validate artifacts and move aliases through the same functions as the API
// (src/store/publish.ts: one compare-and-swap on alias.json, one set of checks), instead of writing their own.
export { publish, rollback, versions } from "../../src/store/publish";
export { aliasKey } from "../../src/store/adapters";
export { parseRef } from "../../src/store/refs";
export { DomainError } from "../../src/errors";
export { Tokenizer } from "@huggingface/tokenizers";
export { SETTINGS } from "../../src/config";
