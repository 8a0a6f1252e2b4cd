// Submits the double opt-in form for a person, so no extra click is needed. Mail scanners
// that only fetch the link run no script and so confirm nothing; without script the
// button still works.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.querySelector("form[data-auto-submit]");
  if (form) {
    form.submit();
  }
});
