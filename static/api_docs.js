// Swagger UI over the service's own /openapi.json. Configured from this file, not an inline
// script, so the page works under the app's Content-Security-Policy (no 'unsafe-inline').
document.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.url,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null, // never send the description to an outside validator
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
