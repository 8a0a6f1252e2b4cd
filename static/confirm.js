// Submits the double opt-in form for a person, so no extra click is needed. Mail scanners
// that only fetch the link run no script and so confirm nothing; without script the page
// says to press the button, and the button works.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.querySelector("form[data-auto-submit]");
  if (form) {
    var waiting = document.getElementById("confirming");
    var instruction = document.getElementById("press-to-confirm");
    if (waiting && instruction) {
      waiting.hidden = false;
      instruction.hidden = true;
    }
    form.submit();
  }
});
