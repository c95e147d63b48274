// The API docs (GET /docs): Swagger UI (bundled from the swagger-ui-dist package by scripts/build-web.mjs) over the
// worker's own OpenAPI document, so the page always matches the routes that serve it. "Authorize" takes an API key,
// held by the page only (never written to the browser's storage); "Try it out" then runs the examples against this server.
declare const SwaggerUIBundle: (options: Record<string, unknown>) => unknown;

SwaggerUIBundle({ url: "/openapi.json", dom_id: "#docs", deepLinking: true, tryItOutEnabled: false, persistAuthorization: false });
