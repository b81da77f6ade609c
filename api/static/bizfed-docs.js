// Starts Swagger UI 5 (it reads OpenAPI 3.1) on the API's own document.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#openapi",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // The key typed into Authorize stays in this tab only; it is never written to localStorage.
    persistAuthorization: false,
    tryItOutEnabled: false,
    displayRequestDuration: true,
    // Validating against a third-party site would leak the document and fail offline.
    validatorUrl: null,
  });
});
